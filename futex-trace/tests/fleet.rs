//! The fleet outputs against the real clients (Debian's `prometheus`, `promtool` and `golang-go`, which
//! `.ci/run` installs): `futex-trace serve --demo` scraped by a Prometheus server and queried through its
//! HTTP API, its /metrics checked by promtool, its /debug/pprof/block pulled by `go tool pprof`, its
//! flamegraph parsed; `futex-trace pprof --demo` read by `go tool pprof`. No root needed. Without those
//! tools a test says why it skips; under CI=true it fails instead.

#[macro_use]
mod common;
use common::serve::{get, Served};
use common::{bin, succeeded};

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when `tool` runs; otherwise says why the test skips (fails under CI=true).
fn have(test: &str, tool: &str, package: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {tool} is missing in CI: .ci/run must install {package}"
    );
    eprintln!("SKIPPED {test}: {tool} is not installed (apt-get install {package})");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_prometheus_server_scrapes_serve_and_promtool_finds_its_metrics_clean() {
    let test = "a_prometheus_server_scrapes_serve_and_promtool_finds_its_metrics_clean";
    if !have(test, "prometheus", "prometheus") || !have(test, "promtool", "prometheus") {
        return;
    }
    let served = Served::quiet(&["--demo"]);
    // promtool: the classic text format, as curl gets it (once the demo has run a moment).
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = get(&served.addr, "/metrics", "*/*");
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        if text.contains("futex_lock_wait_seconds_total{") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(&body).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(body).unwrap();
    for want in [
        "futex_waits_slept_total ",
        "futex_lock_wait_seconds_total{lock=\"demo: heat lock 0\"",
        "futex_wait_seconds_bucket{le=",
        "futex_bucket_waits_slept_total{table=\"futex_core\"",
        "futex_trace_cpu_seconds_total ",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    // A real Prometheus server scrapes it every second; a PromQL query through its HTTP API returns the
    // demo's waits.
    let dir = std::env::temp_dir().join(format!("futex-trace-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: futex\n    static_configs:\n      \
             - targets: ['{}']\n",
            served.addr
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Kill(&mut prom);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let waits = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the waits: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(&web).is_err() {
            continue;
        }
        let (status, body) = get(&web, "/api/v1/query?query=futex_waits_slept_total", "*/*");
        last = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first()) else {
            continue;
        };
        break r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    };
    assert!(waits > 0.0, "{last}");
    // The per-lock series carry their names (bounded labels), as PromQL sees them.
    let (_, body) = get(
        &web,
        "/api/v1/query?query=futex_lock_waits_slept_total%7Block%3D%22demo%3A%20heat%20lock%200%22%7D",
        "*/*",
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");
    // Per process, with what a fleet groups by: its pid, name and cgroup; and the tracer's own version
    // and skipped runs.
    let (_, body) = get(
        &web,
        "/api/v1/query?query=futex_process_waits_slept_total",
        "*/*",
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let m = &v["data"]["result"][0]["metric"];
    assert!(
        m["pid"].as_str().is_some_and(|p| p.parse::<u32>().is_ok())
            && m["comm"] == "futex-trace"
            && m["cgroup"].as_str().is_some_and(|c| c.starts_with('/')),
        "{v}"
    );
    for q in ["futex_trace_build_info", "futex_trace_missed_runs_total"] {
        let (_, body) = get(&web, &format!("/api/v1/query?query={q}"), "*/*");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["data"]["result"].as_array().map(Vec::len),
            Some(1),
            "{q}: {v}"
        );
    }
}

/// `go tool pprof -top` of `what` (a file or a URL): its output.
fn go_pprof_top(what: &str) -> String {
    let out = Command::new("go")
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-sample_index=delay",
            what,
        ])
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn go_tool_pprof_pulls_serves_block_profile_and_reads_a_pprof_file() {
    let test = "go_tool_pprof_pulls_serves_block_profile_and_reads_a_pprof_file";
    if !have(test, "go", "golang-go") {
        return;
    }
    let served = Served::quiet(&["--demo"]);
    // As Go services are profiled: the next 2 seconds.
    let text = go_pprof_top(&format!(
        "http://{}/debug/pprof/block?seconds=2",
        served.addr
    ));
    // By the waiting threads' stacks (the observer's): the demo's functions and futex-core's Mutex.
    assert!(
        text.contains("Type: delay")
            && text.contains("futex_trace::demo::")
            && text.contains("futex_core::sync::mutex::Mutex"),
        "{text}"
    );
    // A bad window is refused with a reason.
    let (status, body) = get(&served.addr, "/debug/pprof/block?seconds=0", "*/*");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("from 1 to"));
    // As Go answers: an index of the profiles, and debug=1 as text (frames by name).
    let (status, body) = get(&served.addr, "/debug/pprof/", "*/*");
    let index = String::from_utf8_lossy(&body);
    assert!(status == 200 && index.contains("block?debug=1") && index.contains("mutex?debug=1"));
    let (status, body) = get(&served.addr, "/debug/pprof/block?debug=1", "*/*");
    let text = String::from_utf8(body).expect("debug=1 is text");
    assert_eq!(status, 200);
    assert!(
        text.starts_with("--- contention:\ncycles/second=")
            && text.contains("\tfutex_trace::demo::"),
        "{text}"
    );
    let (status, _) = get(&served.addr, "/debug/pprof/block?debug=7", "*/*");
    assert_eq!(status, 400);
    // The live flamegraph: an SVG with the hot lock, for a browser.
    let (status, svg) = get(&served.addr, "/flamegraph.svg?seconds=1", "*/*");
    assert_eq!(status, 200);
    let svg = String::from_utf8(svg).unwrap();
    let opt = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(&svg, opt).expect("the SVG is well-formed XML");
    assert!(
        svg.contains("futex_trace::demo::"),
        "the demo's frames are in the flamegraph"
    );
    // `pprof --demo` to a file reads the same way.
    let file = std::env::temp_dir().join(format!("futex-trace-demo-{}.pb.gz", std::process::id()));
    let out = bin()
        .args(["pprof", "--demo", "-d", "1s", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    succeeded(&out);
    let text = go_pprof_top(file.to_str().unwrap());
    assert!(text.contains("futex_trace::demo::"), "{text}");
    // Each sample is labelled with its lock: pprof's tag view lists the hot one.
    let out = Command::new("go")
        .args(["tool", "pprof", "-tags"])
        .arg(&file)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tags.contains("demo: heat lock 0"),
        "{tags}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And with the process's cgroup, as a fleet groups profiles (by service, by container).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if let Some(cgroup) = own.lines().find_map(|l| l.strip_prefix("0::")) {
        assert!(
            tags.contains(" cgroup: ") && tags.contains(cgroup),
            "{tags}"
        );
    }
}

/// One HTTP request as a receiver sees it: the request line, the headers (lowercase names) and body.
fn read_request(s: &mut TcpStream) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut r = std::io::BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_lowercase(), v.trim().to_string());
    }
    let n: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_string(), headers, body))
}

/// The bytes of form field `name` in a multipart/form-data `body`.
fn form_field<'a>(body: &'a [u8], content_type: &str, name: &str) -> Option<&'a [u8]> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut at = 0;
    while let Some(i) = body[at..].windows(d.len()).position(|w| w == d) {
        let start = at + i + d.len();
        let rest = &body[start..];
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let data = &rest[head_end + 4..];
        let end = data
            .windows(d.len() + 2)
            .position(|w| w[..2] == *b"\r\n" && &w[2..] == d)?;
        if head.contains(&format!("name=\"{name}\"")) {
            return Some(&data[..end]);
        }
        at = start;
    }
    None
}

use std::collections::HashMap;

#[test]
fn serve_pushes_each_intervals_profile_to_a_pyroscope_ingest_retrying_failures() {
    // A stand-in for Pyroscope's /ingest that refuses the first request (500) and takes the rest.
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in receiver.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let Some(req) = read_request(&mut conn) else {
                continue;
            };
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send((n, req)).is_err() {
                break;
            }
        }
    });
    let push = format!("http://127.0.0.1:{port}");
    let served = Served::quiet(&[
        "--demo",
        "--push",
        &push,
        "--push-every",
        "2s",
        "--app-name",
        "demo.app",
        "--push-label",
        "env=test",
    ]);
    // The first try is refused; the retry a second later carries the same interval's profile.
    let (n0, first) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no push arrived");
    let (n1, second) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no retry arrived");
    assert_eq!((n0, n1), (0, 1));
    assert_eq!(first.0, second.0, "the retry is the same request");
    let (request_line, headers, body) = second;
    assert!(request_line.starts_with("POST /ingest?"), "{request_line}");
    let query: HashMap<String, String> = request_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("%7B", "{")
                    .replace("%7D", "}")
                    .replace("%3D", "="),
            )
        })
        .collect();
    assert_eq!(query["name"], "demo.app{env=test}", "{request_line}");
    assert_eq!(query["format"], "pprof");
    let (from, until): (u64, u64) = (
        query["from"].parse().unwrap(),
        query["until"].parse().unwrap(),
    );
    assert!(from < until && until - from <= 4, "{from}..{until}");
    let ct = &headers["content-type"];
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let profile = form_field(&body, ct, "profile").expect("a profile field");
    let p = futex_trace::export::pprof::decode(profile).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<&str> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
    assert_eq!(types, ["contentions", "delay"]);
    // By the waiting threads' stacks: the demo's functions, named (a push waits for the session to
    // symbolize the stacks it has seen).
    assert!(
        (p.function.iter()).any(|f| s(f.name).starts_with("futex_trace::demo::")),
        "the demo's functions are in the pushed profile: {:?}",
        p.function.iter().map(|f| s(f.name)).collect::<Vec<_>>()
    );
    let lock_labels: Vec<&str> = (p.sample.iter())
        .flat_map(|x| &x.label)
        .filter(|l| s(l.key) == "lock")
        .map(|l| s(l.str))
        .collect();
    assert!(
        lock_labels.contains(&"demo: heat lock 0"),
        "the hot lock labels its samples: {lock_labels:?}"
    );
    // Pushes are counted on /metrics (one ok so far: the refused try was retried, not given up on).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = get(&served.addr, "/metrics", "*/*");
        let m = String::from_utf8(m).unwrap();
        if m.contains("futex_trace_pushes_total{result=\"ok\"}") {
            assert!(
                m.contains("futex_trace_pushes_total{result=\"failed\"} 0"),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no push counters in\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The next interval begins where this one ended. Neither is stretched: not by the wait for
    // names (the first symbolization of a debug build can take seconds), and not by the retry.
    let (n2, (_, headers2, body2)) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no second interval arrived");
    assert_eq!(n2, 2);
    let ct2 = &headers2["content-type"];
    let p2 =
        futex_trace::export::pprof::decode(form_field(&body2, ct2, "profile").unwrap()).unwrap();
    let every_ns = 2_000_000_000;
    let slack_ns = 800_000_000;
    for (i, q) in [&p, &p2].iter().enumerate() {
        assert!(
            (every_ns - slack_ns..=every_ns + slack_ns).contains(&q.duration_nanos),
            "interval {i} lasted {} ns, not about --push-every 2s",
            q.duration_nanos
        );
    }
    let gap = p2.time_nanos - (p.time_nanos + p.duration_nanos);
    assert!(
        gap.abs() < 1_000,
        "interval 1 starts {gap} ns after interval 0 ends"
    );
}

/// The first line of serve's stderr that contains `wanted`; none before it may contain `not`.
fn first_line_saying(err: &mut impl BufRead, wanted: &str, not: Option<&str>) -> String {
    let mut line = String::new();
    while !line.contains(wanted) {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "serve ended instead of going on"
        );
        if let Some(not) = not {
            assert!(
                !line.contains(not),
                "'{not}' came before '{wanted}': {line}"
            );
        }
    }
    line
}

#[test]
fn a_push_that_cannot_reach_its_server_is_said_and_serving_goes_on() {
    let port = free_port(); // nothing listens there
    let push = format!("http://127.0.0.1:{port}");
    let (served, mut err) = Served::start(&["--demo", "--push", &push, "--push-every", "1s"]);
    let line = first_line_saying(&mut err, "push to", None);
    assert!(
        line.contains("failed") && line.contains("dropped"),
        "{line}"
    );
    // The interval in readable UTC times, not epoch seconds.
    let when = line.split("the profile of ").nth(1).unwrap_or("");
    assert!(when.contains('T') && when.contains("Z.."), "{line}");
    // Said once: the next failures (one a second) are summed up a minute later, not a line each.
    std::thread::sleep(Duration::from_secs(4));
    let (status, m) = get(&served.addr, "/metrics", "*/*");
    assert_eq!(status, 200, "still serving");
    let m = String::from_utf8(m).unwrap();
    let failed: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("futex_trace_pushes_total{result=\"failed\"} "))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0);
    assert!(failed >= 2.0, "{m}");
    drop(served);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(!rest.contains("push to"), "failures said again: {rest}");
}

#[test]
fn a_server_that_never_answers_drops_intervals_past_the_queue_and_says_so() {
    // It takes the connections and answers none: each try waits for the client's timeout (10 s),
    // while intervals keep being cut every second.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let push = format!("http://127.0.0.1:{port}");
    let (served, mut err) = Served::start(&["--demo", "--push", &push, "--push-every", "1s"]);
    // Cutting does not wait for the stuck push: the queue fills (in about 6 s) long before the first
    // try times out (after 11 s).
    let line = first_line_saying(&mut err, "behind", None);
    assert!(line.contains("dropped"), "{line}");
    let (status, m) = get(&served.addr, "/metrics", "*/*");
    assert_eq!(status, 200, "still serving");
    let m = String::from_utf8(m).unwrap();
    assert!(
        !m.contains("futex_trace_pushes_total{result=\"failed\"} 0"),
        "the dropped interval is counted: {m}"
    );
}

#[test]
fn the_live_flamegraph_renders_in_headless_chromium_with_the_hot_lock() {
    let test = "the_live_flamegraph_renders_in_headless_chromium_with_the_hot_lock";
    if !have(test, "chromium", "chromium") {
        return;
    }
    let served = Served::quiet(&["--demo"]);
    let dir = std::env::temp_dir().join(format!("futex-trace-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{}/flamegraph.svg?seconds=2", served.addr);
    // As the machine's notes say Chromium runs here: headless, no sandbox as root, nothing fetched
    // from outside, a fresh profile.
    let chromium = |args: &[&str], profile: &str| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", dir.join(profile).display()))
            .args(args)
            .arg(&url)
            .output()
            .unwrap()
    };
    // The page as the browser rendered it (its scripts ran): the hot lock's frame is in its text.
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom"], "dom");
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains("futex_trace::demo::"),
        "the demo's frames are not in the rendered page: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    // And a screenshot of it: a PNG with something drawn.
    let png = dir.join("flamegraph.png");
    let shot = chromium(
        &[
            "--window-size=1200,600",
            &format!("--screenshot={}", png.display()),
        ],
        "shot",
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 5_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
