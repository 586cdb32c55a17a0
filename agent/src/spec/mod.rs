//! The user's files: the desired-state model, loading, validation, CSV import
//! and atomic edits of `config/*.json`.

pub mod csv_import;
pub mod edit;
pub mod error;
pub mod examples;
pub mod load;
pub mod locate;
pub mod model;
pub mod notify_config;
pub mod rules;
pub mod validate;

#[cfg(test)]
mod edit_tests;
#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod validate_tests;

pub use csv_import::{CsvImport, CsvImportOptions, import_projects_csv};
pub use edit::{add_project, remove_project, scale, write_atomic, write_infrastructure};
pub use error::{SpecError, SpecErrorKind, SpecErrors};
pub use examples::write_examples;
pub use load::{
    DEPLOYMENT_FILE, EMAIL_FILE, INFRASTRUCTURE_FILE, LoadedConfig, PROJECTS_CSV_FILE, SMS_FILE,
    load_dir, parse_deployment, parse_email, parse_infrastructure, parse_sms, parse_spec,
};
pub use model::*;
pub use notify_config::{EmailConfig, SmsConfig};
