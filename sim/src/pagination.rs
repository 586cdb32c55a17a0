//! Page/per_page parsing and `links.pages` (absolute URLs) + `meta.total`.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const DEFAULT_PER_PAGE: usize = 20;
pub const MAX_PER_PAGE: usize = 200;

/// A requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: usize,
    pub per_page: usize,
}

impl Page {
    /// Parses `page` (>= 1) and `per_page` (1..=200, default 20; larger values are capped at 200).
    pub fn from_query(q: &HashMap<String, String>) -> ApiResult<Page> {
        let num = |key: &str, default: usize| -> ApiResult<usize> {
            match q.get(key) {
                None => Ok(default),
                Some(v) => v.trim().parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!("{key} must be a positive integer, got {v:?}"))
                }),
            }
        };
        let page = num("page", 1)?.max(1);
        let per_page = num("per_page", DEFAULT_PER_PAGE)?;
        if per_page == 0 {
            return Err(ApiError::bad_request("per_page must be between 1 and 200"));
        }
        Ok(Page {
            page,
            per_page: per_page.min(MAX_PER_PAGE),
        })
    }
}

/// Builds a paginated body `{key: items, links, meta}` from all matching items.
pub fn paginate(
    key: &str,
    items: Vec<Value>,
    page: Page,
    base_url: &str,
    path: &str,
    query: &HashMap<String, String>,
) -> Value {
    paginate_by(key, &items, Value::clone, page, base_url, path, query)
}

/// Like [`paginate`], rendering only the items on the requested page.
pub fn paginate_by<T>(
    key: &str,
    items: &[T],
    render: impl Fn(&T) -> Value,
    page: Page,
    base_url: &str,
    path: &str,
    query: &HashMap<String, String>,
) -> Value {
    let total = items.len();
    let last = total.div_ceil(page.per_page).max(1);
    let start = (page.page - 1).saturating_mul(page.per_page);
    let slice: Vec<Value> = items
        .iter()
        .skip(start)
        .take(page.per_page)
        .map(render)
        .collect();
    let url = |p: usize| {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        s.append_pair("page", &p.to_string());
        s.append_pair("per_page", &page.per_page.to_string());
        format!("{base_url}{path}?{}", s.finish())
    };
    let mut pages = Map::new();
    if page.page > 1 {
        pages.insert("first".into(), json!(url(1)));
        pages.insert("prev".into(), json!(url((page.page - 1).min(last))));
    }
    if page.page < last {
        pages.insert("next".into(), json!(url(page.page + 1)));
        pages.insert("last".into(), json!(url(last)));
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({"pages": pages})
    };
    let mut body = Map::new();
    body.insert(key.into(), Value::Array(slice));
    body.insert("links".into(), links);
    body.insert("meta".into(), json!({"total": total}));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn middle_page_has_all_links_and_keeps_filters() {
        let items: Vec<Value> = (0..45).map(|i| json!(i)).collect();
        let query = q(&[("page", "2"), ("tag_name", "web")]);
        let page = Page::from_query(&query).unwrap();
        let body = paginate("x", items, page, "http://h", "/v2/x", &query);
        assert_eq!(body["x"][0], 20);
        assert_eq!(body["meta"]["total"], 45);
        let pages = &body["links"]["pages"];
        assert_eq!(
            pages["next"],
            "http://h/v2/x?tag_name=web&page=3&per_page=20"
        );
        assert_eq!(
            pages["last"],
            "http://h/v2/x?tag_name=web&page=3&per_page=20"
        );
        assert_eq!(
            pages["first"],
            "http://h/v2/x?tag_name=web&page=1&per_page=20"
        );
        assert_eq!(
            pages["prev"],
            "http://h/v2/x?tag_name=web&page=1&per_page=20"
        );
    }

    #[test]
    fn single_page_has_empty_links_and_caps_per_page() {
        let query = q(&[("per_page", "500")]);
        let page = Page::from_query(&query).unwrap();
        assert_eq!(page.per_page, 200);
        let body = paginate("x", vec![json!(1)], page, "http://h", "/v2/x", &query);
        assert_eq!(body["links"], json!({}));
        assert!(Page::from_query(&q(&[("per_page", "0")])).is_err());
        assert!(Page::from_query(&q(&[("page", "abc")])).is_err());
    }
}
