//! Loading and validating whole configuration files.

use edge_config::{load_file, parse_str, Direction, ExecutionProvider, Issue, ObjectKind, RuleKind};

const GOOD: &str = r#"
[site]
city = "xining"
district = "chengzhong"
town = "nanchuan"
village = "xiaozhuang"
checkpoint = "east-gate"
name = "小庄村东口"

[mqtt]
host = "127.0.0.1"
port = 1884

[models]
dir = "models"
execution_provider = "cpu"

[[cameras]]
id = "gate-in"
url = "rtsp://admin:hunter2@10.0.0.5:554/Streaming/Channels/101"
detect_fps = 5

[[cameras]]
id = "gate-out"
url = "file:///srv/clips/out.mp4"
"#;

fn paths(issues: &[Issue]) -> Vec<&str> {
    issues.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn a_complete_config_parses_with_defaults_filled_in() {
    let config = parse_str(GOOD).unwrap();
    assert_eq!(config.site.path(), "xining/chengzhong/nanchuan/xiaozhuang/east-gate");
    let mqtt = config.mqtt.as_ref().unwrap();
    assert_eq!(mqtt.port, 1884);
    assert_eq!(mqtt.topic_prefix, "checkpoint");
    assert_eq!(mqtt.client_id_for(&config.site), "edge-agent-xining.chengzhong.nanchuan.xiaozhuang.east-gate");
    assert_eq!(config.models.execution_provider, ExecutionProvider::Cpu);
    assert_eq!(config.models.detector.labels.len(), 6);
    assert_eq!(config.cameras.len(), 2);
    assert_eq!(config.cameras[1].detect_fps, 5.0);
    assert!(config.cameras[0].enabled);
}

#[test]
fn unknown_keys_are_reported_with_their_path() {
    let text = GOOD.replace("detect_fps = 5", "detect_fsp = 5");
    let issues = parse_str(&text).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].path.starts_with("cameras[0]"), "{issues:?}");
    assert!(issues[0].message.contains("detect_fsp"), "{issues:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r##"
[site]
city = "xining"
district = "cheng zhong"
town = "nanchuan"
village = "xiao/zhuang"
checkpoint = "#"

[mqtt]
host = ""
port = "eighteen"

[models]
intra_threads = 0
[models.detector]
labels = ["person", "unicorn"]

[[cameras]]
id = "a"
url = "ftp://cam/stream"

[[cameras]]
id = "a"
url = "rtsp://user:pw@/nohost"
detect_fps = -1

[[cameras]]
id = "c"
url = 42

[bogus]
x = 1
"##;
    let issues = parse_str(text).unwrap_err();
    let p = paths(&issues);
    for want in [
        "bogus",
        "site.district",
        "site.village",
        "site.checkpoint",
        "mqtt.port",
        "models.intra_threads",
        "cameras[0].url",
        "cameras[1].id",
        "cameras[1].url",
        "cameras[1].detect_fps",
        "cameras[2].url",
    ] {
        assert!(p.contains(&want), "missing {want} in {p:?}");
    }
    let text = issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(!text.contains("pw@"), "credentials leaked: {text}");
    assert!(text.contains("duplicate camera id \"a\" (also cameras[0])"), "{text}");
}

#[test]
fn missing_site_is_an_error() {
    let issues = parse_str("[[cameras]]\nid = \"a\"\nurl = \"file:///x.mp4\"\n").unwrap_err();
    assert_eq!(paths(&issues), ["site"]);
}

#[test]
fn syntax_errors_name_the_line() {
    let issues = parse_str("[site]\ncity = = \"x\"\n").unwrap_err();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].path.starts_with("line 2"), "{issues:?}");
}

#[test]
fn credentials_never_appear_in_errors() {
    let text = GOOD.replace("detect_fps = 5", "detect_fps = 500");
    let issues = parse_str(&text).unwrap_err();
    let all = format!("{issues:?}");
    assert!(!all.contains("hunter2"), "{all}");
    let config = parse_str(GOOD).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn camera_index_in_errors_counts_cameras_that_failed_to_parse() {
    let text = GOOD.replace("id = \"gate-in\"", "id = \"gate-in\"\nenabled = \"yes\"").replace("file:///srv/clips/out.mp4", "gopher://x/y");
    let issues = parse_str(&text).unwrap_err();
    let p = paths(&issues);
    assert!(p.contains(&"cameras[0].enabled"), "{p:?}");
    assert!(p.contains(&"cameras[1].url"), "{p:?}");
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, GOOD).unwrap();
    let config = load_file(&path).unwrap();
    assert_eq!(config.models.dir, dir.path().join("models"));
    assert_eq!(config.storage.state_dir, std::path::PathBuf::from("/var/lib/edge-agent"));
}

#[test]
fn lines_and_zones_parse_and_degenerate_geometry_is_rejected() {
    let good = format!(
        "{GOOD}\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.1, 0.7], [0.9, 0.7]]\nin_side = [0.5, 0.9]\n\n[[cameras.zones]]\nid = \"lane\"\npoints = [[0.2, 0.5], [0.8, 0.5], [0.9, 1.0], [0.1, 1.0]]\n"
    );
    let config = parse_str(&good).unwrap();
    assert_eq!(config.cameras[1].lines[0].id, "gate");
    assert_eq!(config.cameras[1].zones[0].points.len(), 4);

    let bad = format!(
        "{GOOD}
[[cameras.lines]]
id = \"dot\"
points = [[0.5, 0.5], [0.505, 0.5]]
in_side = [0.5, 0.9]

[[cameras.lines]]
id = \"flat\"
points = [[0.1, 0.7], [0.9, 0.7]]
in_side = [0.5, 0.7]

[[cameras.zones]]
id = \"bowtie\"
points = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]

[[cameras.zones]]
id = \"sliver\"
points = [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1]]

[[cameras.zones]]
id = \"flat\"
points = [[0.1, 0.1], [1.5, 0.1], [0.9, 0.9]]
"
    );
    let issues = parse_str(&bad).unwrap_err();
    let p: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let has = |prefix: &str, words: &str| p.iter().any(|i| i.starts_with(prefix) && i.contains(words));
    assert!(has("cameras[1].lines[0].points", "degenerate"), "{p:#?}");
    assert!(has("cameras[1].lines[1].in_side", "on the line"), "{p:#?}");
    assert!(has("cameras[1].zones[0].points", "cross"), "{p:#?}");
    assert!(has("cameras[1].zones[1].points", "degenerate"), "{p:#?}");
    assert!(has("cameras[1].zones[2].points", "0 to 1"), "{p:#?}");
    assert!(has("cameras[1].zones[2].id", "duplicate"), "{p:#?}");
}

const SITE: &str = "[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n";

#[test]
fn usb_cameras_are_device_paths_or_v4l2_urls() {
    let text = format!("{SITE}[[cameras]]\nid = \"usb\"\nurl = \"/dev/video0\"\n[[cameras]]\nid = \"usb2\"\nurl = \"v4l2:///dev/video2\"\n");
    let config = parse_str(&text).unwrap();
    assert_eq!(config.cameras[0].url.uri(), "v4l2:///dev/video0");
    assert_eq!(config.cameras[1].url.uri(), "v4l2:///dev/video2");
    for bad in ["/dev/sda", "v4l2:///etc/passwd"] {
        let issues = parse_str(&format!("{SITE}[[cameras]]\nid = \"x\"\nurl = \"{bad}\"\n")).unwrap_err();
        assert_eq!(paths(&issues), ["cameras[0].url"], "{bad}: {issues:?}");
    }
}

#[test]
fn no_cameras_is_valid_for_a_fresh_install_and_rules_are_checked() {
    assert!(parse_str(SITE).unwrap().cameras.is_empty());
    let text = format!(
        "{SITE}[[rules]]\nid = \"w\"\nkind = \"watch_list\"\nplates = [\"苏E1\"]\ntolerance = 2\n[[rules]]\nid = \"n\"\nkind = \"after_hours\"\nfrom = \"25:00\"\nto = \"06:00\"\n[[rules]]\nid = \"c\"\nkind = \"crowding\"\nzone = \"square\"\nmin_people = 3\nmin_secs = 10\n[[rules]]\nid = \"w\"\nkind = \"key_region\"\nprefixes = [\"鄂A\"]\nbogus = 1\n"
    );
    let issues = parse_str(&text).unwrap_err();
    let p = paths(&issues);
    for want in ["rules[0].plates[0]", "rules[0].tolerance", "rules[1].from", "rules[2].zone", "rules[3].bogus"] {
        assert!(p.contains(&want), "{want} missing from {issues:?}");
    }
}

#[test]
fn rule_values_are_parsed_into_types_once_and_each_bad_one_is_named_at_its_key() {
    let good = format!(
        "{SITE}[[rules]]\nid = \"n\"\nkind = \"after_hours\"\nfrom = \"22:30\"\nto = \"06:00\"\ntypes = [\"vehicle\"]\ndirection = \"in\"\n\
         [[rules]]\nid = \"w\"\nkind = \"watch_list\"\nentries = [{{ plate = \"苏ED51712\", until = \"2027-01-15T07:00:00+08:00\" }}]\n"
    );
    let config = parse_str(&good).unwrap();
    let RuleKind::AfterHours { from, to, types, direction } = &config.rules[0].kind else { panic!("{:?}", config.rules[0]) };
    assert_eq!((from.minutes(), to.minutes(), types.as_slice(), *direction), (22 * 60 + 30, 6 * 60, &[ObjectKind::Vehicle][..], Some(Direction::In)));
    assert_eq!(from.to_string(), "22:30");
    let RuleKind::WatchList { entries, .. } = &config.rules[1].kind else { panic!("{:?}", config.rules[1]) };
    assert_eq!(entries[0].until.map(|u| u.to_rfc3339()).as_deref(), Some("2027-01-14T23:00:00+00:00"));

    let bad = [
        ("from = \"22:30\"", "from = \"7:00\"", "rules[0].from", "\"7:00\" is not a time of day HH:MM"),
        ("types = [\"vehicle\"]", "types = [\"bike\"]", "rules[0].types[0]", "`bike`"),
        ("direction = \"in\"", "direction = \"up\"", "rules[0].direction", "`up`"),
        ("2027-01-15T07:00:00+08:00", "15 Jan 2027", "rules[1].entries[0].until", "not an RFC 3339 time"),
        ("direction = \"in\"", "direction = \"in\"\nzone = \"square\"", "rules[0]", "unknown field `zone` for kind `after_hours`"),
        ("to = \"06:00\"\n", "", "rules[0]", "missing field `to`"),
        ("to = \"06:00\"", "to = \"22:30\"", "rules[0].to", "empty"),
    ];
    for (from, to, path, words) in bad {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{from} not found");
        let issues = parse_str(&text).unwrap_err();
        assert!(issues.iter().any(|i| i.path == path && i.message.contains(words)), "{path} {words:?} not in {issues:?}");
    }
}

#[test]
fn restart_only_sections_are_named_and_reloadable_ones_are_not() {
    let old = parse_str(GOOD).unwrap();
    assert!(old.restart_required(&old).is_empty());
    let moved = GOOD.replace("checkpoint = \"east-gate\"", "checkpoint = \"west-gate\"").replace("port = 1884", "port = 1885");
    let new = parse_str(&moved).unwrap();
    assert_eq!(old.restart_required(&new), vec!["site", "mqtt"]);
    // Cameras, rules and events apply on reload.
    let cameras = GOOD.replace("detect_fps = 5", "detect_fps = 3");
    assert!(old.restart_required(&parse_str(&cameras).unwrap()).is_empty());
}

#[test]
fn motion_settings_default_sensibly_and_bad_ones_are_named() {
    let config = parse_str(GOOD).unwrap();
    let m = &config.cameras[0].motion;
    assert!(m.enabled && m.masks.is_empty());
    assert_eq!((m.keepalive_secs, m.threshold, m.min_area), (2.0, 12, 0.002));
    assert_eq!((config.models.plates.settle_reads, config.models.plates.min_vehicle_width_px), (5, 96));

    let good = format!("{GOOD}\n[cameras.motion]\nkeepalive_secs = 5\nmasks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.2]]]\n");
    let config = parse_str(&good).unwrap();
    assert_eq!((config.cameras[1].motion.keepalive_secs, config.cameras[1].motion.masks.len()), (5.0, 1));

    let bad = format!(
        "{GOOD}\n[cameras.motion]\nkeepalive_secs = 0\nthreshold = 1\nmin_area = 0.9\nmasks = [[[0.0, 0.0], [0.3, 0.0]], [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]]\n"
    );
    let issues = parse_str(&bad).unwrap_err();
    let p: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let has = |prefix: &str, words: &str| p.iter().any(|i| i.starts_with(prefix) && i.contains(words));
    assert!(has("cameras[1].motion.keepalive_secs", "0.2..=60"), "{p:#?}");
    assert!(has("cameras[1].motion.threshold", "3..=100"), "{p:#?}");
    assert!(has("cameras[1].motion.min_area", "(0, 0.5]"), "{p:#?}");
    assert!(has("cameras[1].motion.masks[0]", "at least 3 corners"), "{p:#?}");
    assert!(has("cameras[1].motion.masks[1]", "cross"), "{p:#?}");
    let unknown = parse_str(&format!("{GOOD}\n[cameras.motion]\nsensitivity = 3\n")).unwrap_err();
    assert!(unknown.iter().any(|i| i.to_string().contains("unknown field `sensitivity`")), "{unknown:?}");
}

#[test]
fn plates_default_to_auto_and_the_plate_memory_is_checked() {
    let config = parse_str(GOOD).unwrap();
    assert_eq!(config.events.plate_memory_secs, 10.0);
    assert!(config.cameras.iter().all(|c| c.plates == edge_config::PlateMode::Auto));
    let bad = GOOD.replacen("[[cameras]]", "[events]\nplate_memory_secs = -1\n\n[[cameras]]", 1);
    let issues = parse_str(&bad).unwrap_err();
    assert!(issues.iter().any(|i| i.to_string().starts_with("events.plate_memory_secs") && i.to_string().contains("[0, 600]")), "{issues:?}");
}

#[test]
fn detector_sessions_default_to_one_per_core_with_one_thread_each() {
    let config = parse_str(GOOD).unwrap();
    assert_eq!((config.models.detector_sessions, config.models.intra_threads), (0, 1));
    assert_eq!(config.models.sessions(3), 3, "one per core the agent counts");
    let cuda = edge_config::Models { execution_provider: edge_config::ExecutionProvider::Cuda, ..config.models.clone() };
    assert_eq!(cuda.sessions(3), 1, "one on CUDA");
    let bad = GOOD.replacen("[models]\n", "[models]\ndetector_sessions = 99\n", 1);
    let issues = parse_str(&bad).unwrap_err();
    assert!(issues.iter().any(|i| i.to_string().starts_with("models.detector_sessions") && i.to_string().contains("0..=16")), "{issues:?}");
}
