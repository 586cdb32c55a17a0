//! Tests of the wire <-> domain conversions and their validation.

use super::*;

fn spec() -> ContainerSpec {
    ContainerSpec {
        name: "shop-uat-web.shop-web1".into(),
        image: "sha256:abc".into(),
        labels: ServiceLabels {
            project: "shop".into(),
            environment: "uat".into(),
            service: "web".into(),
            tag: "v1.0.0-uat-20261125-1200".into(),
        },
        extra_labels: BTreeMap::from([("infra.droplet".into(), "shop-web1".into())]),
        command: Some(vec!["/bin/sh".into(), "-c".into(), "sleep 9".into()]),
        env: BTreeMap::from([("A".into(), "b=c".into())]),
        publish: Some(PortPublish {
            host_ip: "127.0.0.3".parse().unwrap(),
            host_port: 8100,
            container_port: 8000,
        }),
        secrets: BTreeMap::from([("api_key".into(), SecretValue::new("s3cr3t"))]),
        init: true,
    }
}

fn field_of(e: ApiError) -> &'static str {
    match e {
        ApiError::InvalidArgument { field, .. } => field,
        other => panic!("not InvalidArgument: {other}"),
    }
}

#[test]
fn spec_round_trips() {
    let s = spec();
    let back = spec_from_wire(spec_to_wire(&s)).unwrap();
    assert_eq!(back.name, s.name);
    assert_eq!(back.labels, s.labels);
    assert_eq!(back.extra_labels, s.extra_labels);
    assert_eq!(back.command, s.command);
    assert_eq!(back.env, s.env);
    assert_eq!(back.publish, s.publish);
    assert_eq!(back.secrets, s.secrets);
    assert!(back.init);
    let mut none = s.clone();
    none.command = None;
    none.publish = None;
    let back = spec_from_wire(spec_to_wire(&none)).unwrap();
    assert_eq!((back.command, back.publish), (None, None));
}

#[test]
fn bad_specs_name_the_field() {
    type Edit = fn(&mut wire::ContainerSpec);
    let cases: [(&str, Edit); 10] = [
        ("name", |w| w.name = "../etc".into()),
        ("image", |w| w.image = String::new()),
        ("project", |w| w.project = "a b".into()),
        ("extra_labels", |w| {
            w.extra_labels
                .insert(LABEL_AGENT.into(), "elsewhere".into());
        }),
        ("command", |w| w.command = Some(wire::Argv { args: vec![] })),
        ("env", |w| {
            w.env.insert("A=B".into(), "x".into());
        }),
        ("publish.host_ip", |w| {
            w.publish.as_mut().unwrap().host_ip = "nowhere".into();
        }),
        ("publish.host_port", |w| {
            w.publish.as_mut().unwrap().host_port = 70000;
        }),
        ("publish.container_port", |w| {
            w.publish.as_mut().unwrap().container_port = 0;
        }),
        ("secrets", |w| {
            w.secrets.insert("../x".into(), "v".into());
        }),
    ];
    for (field, edit) in cases {
        let mut w = spec_to_wire(&spec());
        edit(&mut w);
        assert_eq!(field_of(spec_from_wire(w).unwrap_err()), field);
    }
}

#[test]
fn info_round_trips_and_rejects_bad_ports() {
    let info = ContainerInfo {
        id: "abc".into(),
        name: "web".into(),
        image: "sha256:abc".into(),
        labels: BTreeMap::from([(LABEL_AGENT.into(), "shop-web1".into())]),
        state: "running".into(),
        running: true,
        ports: vec![(8000, "127.0.0.3".into(), 8100)],
    };
    assert_eq!(info_from_wire(info_to_wire(info.clone())).unwrap(), info);
    let mut w = info_to_wire(info);
    w.ports[0].host_port = 70000;
    assert!(info_from_wire(w).unwrap_err().contains("70000"));
}

#[test]
fn image_refs() {
    assert!(image("image", "sha256:0123abcd").is_ok());
    assert!(image("image", "infra-test/x:v1").is_ok());
    for bad in ["", "a b", "-x", "x\n"] {
        assert!(image("image", bad).is_err(), "{bad:?}");
    }
}
