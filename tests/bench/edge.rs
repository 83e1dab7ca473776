//! Edge benchmark (run with `cargo bench --bench edge`; release build): Berth's reverse proxy against nginx as a
//! reverse proxy, both in front of the same nginx serving a 1 KiB static file, in the same run:
//! - requests/s and p99 latency with wrk for HTTP and HTTPS (TLS 1.3, same certificate) at 64 and 256 connections
//!   (targets: throughput ratio berth/nginx ≥ 1.0, p99 ratio ≤ 1.2),
//! - the CPU time each front spends per request in those runs (user and system, from `/proc`; no target): on a
//!   machine where wrk, the backend and both fronts share few cores, this is steadier than the throughput ratio,
//!   and says whether a gap in throughput is the proxy's own cost or the machine's scheduling,
//! - peak RSS of the Berth proxy process under that load next to nginx's (all its processes),
//! - the cost of a route lookup (`RouteTable::get`) and of a certificate lookup by SNI (`CertResolver::lookup`) with
//!   10 and 10,000 names (target: flat, ratio ≈ 1).
//!
//! The Berth proxy runs in a child process (this binary with the argument `proxy-server`) so its memory is its own.
//! It prints measurements, targets and ratios; it does not fail on a noisy machine. `BERTH_BENCH_SECONDS` sets the
//! load duration per case and front (default 21), split into [`ROUNDS`] rounds that alternate between the two
//! fronts (and which goes first), so a drift in the machine's speed during the run (other processes, CPU frequency,
//! a neighbour on the host taking CPU time) falls on both rather than on whichever was measured second. The ratios
//! against the targets are the medians of the rounds' ratios: each round compares the two fronts measured seconds
//! apart, so a slow stretch of the machine cancels out within the round instead of showing up as a gap between the
//! two fronts' own medians (which are printed too, with every round's figures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ports;
use ports::free_ports;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::proxy::{Backend, ForwardedProto, Proxy, ProxyConfig, RouteTable};
use berth::tls::{CertResolver, InternalCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The `Host` both fronts are asked for.
const HOST: &str = "bench.test";
/// Rounds per case: each measures both fronts for a share of the case's duration.
const ROUNDS: u64 = 7;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("proxy-server") {
        proxy_server(&args[2..]);
        return;
    }
    for tool in ["nginx", "wrk"] {
        if Command::new(tool).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            eprintln!("edge benchmark: `{tool}` is not installed (apt-get install nginx-light wrk)");
            std::process::exit(1);
        }
    }
    let seconds: u64 = std::env::var("BERTH_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(21);
    println!(
        "berth edge benchmark ({} cores, {seconds} s per case)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let tls = write_certificate(dir.path());

    let backend = Nginx::backend(&dir.path().join("backend"));
    let front = Nginx::front(&dir.path().join("front"), backend.port, &tls);
    let berth = BerthProxy::start(backend.port, &tls);
    let (berth_pids, nginx_pids) = (vec![berth.child.id()], process_tree(front.child.id()));
    let tick_seconds = 1.0 / clock_ticks_per_second();
    println!("backend: nginx on 127.0.0.1:{} serving a 1 KiB file", backend.port);
    if Command::new("caddy").arg("version").output().is_err() {
        println!("caddy: not installed, not compared");
    }

    // Warm both fronts (connections, TLS session setup paths, allocator) before measuring.
    for base in [berth.http_url(), front.http_url(), berth.https_url(), front.https_url()] {
        wrk(&base, 64, 2, &[], tick_seconds);
    }
    for (scheme, connections) in [("http", 64), ("http", 256), ("https", 64), ("https", 256)] {
        let (b, n) = match scheme {
            "http" => (berth.http_url(), front.http_url()),
            _ => (berth.https_url(), front.https_url()),
        };
        let round_seconds = (seconds / ROUNDS).max(1);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                ours.push(wrk(&b, connections, round_seconds, &berth_pids, tick_seconds));
                theirs.push(wrk(&n, connections, round_seconds, &nginx_pids, tick_seconds));
            } else {
                theirs.push(wrk(&n, connections, round_seconds, &nginx_pids, tick_seconds));
                ours.push(wrk(&b, connections, round_seconds, &berth_pids, tick_seconds));
            }
        }
        let rps_ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o.rps / t.rps).collect();
        let p99_ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o.p99_ms / t.p99_ms).collect();
        let cpu_ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o.cpu_us / t.cpu_us).collect();
        let round_p99s: Vec<String> =
            ours.iter().zip(&theirs).map(|(o, t)| format!("{:.1}/{:.1}", o.p99_ms, t.p99_ms)).collect();
        let (ours, theirs) = (Load::median(&ours), Load::median(&theirs));
        println!(
            "{scheme:5} c={connections:3}: ratio throughput {:.2} (target ≥ 1.0) p99 ratio {:.2} (target ≤ 1.2) | medians: berth {:6.0} req/s p99 {:6.2} ms, nginx {:6.0} req/s p99 {:6.2} ms | throughput per round {} | p99 ms per round (berth/nginx) {}",
            median(rps_ratios.clone()),
            median(p99_ratios),
            ours.rps,
            ours.p99_ms,
            theirs.rps,
            theirs.p99_ms,
            rps_ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" "),
            round_p99s.join(" ")
        );
        println!(
            "{scheme:5} c={connections:3}: CPU per request ratio {:.2} (berth/nginx, no target) | medians: berth {:.1} µs, nginx {:.1} µs",
            median(cpu_ratios),
            ours.cpu_us,
            theirs.cpu_us
        );
    }
    let berth_peak = vm_hwm_kib(berth.child.id());
    let nginx_peak: u64 = process_tree(front.child.id()).into_iter().map(vm_hwm_kib).sum();
    println!(
        "peak RSS under load: berth proxy {:.1} MiB | nginx front (master + workers) {:.1} MiB",
        berth_peak as f64 / 1024.0,
        nginx_peak as f64 / 1024.0
    );
    drop(berth);
    drop(front);
    drop(backend);

    lookups();
}

/// wrk's summary of one run, and the CPU time the front under test spent per request in it.
struct Load {
    rps: f64,
    p99_ms: f64,
    cpu_us: f64,
}

/// The middle value of `values` (the upper middle of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Load {
    /// The median throughput and the median p99 of `runs` (each on its own).
    fn median(runs: &[Load]) -> Load {
        Load {
            rps: median(runs.iter().map(|l| l.rps).collect()),
            p99_ms: median(runs.iter().map(|l| l.p99_ms).collect()),
            cpu_us: median(runs.iter().map(|l| l.cpu_us).collect()),
        }
    }
}

/// Runs wrk (2 threads) against `url` with `Host: bench.test`, counting the CPU time of `front` (the processes
/// serving `url`) meanwhile.
fn wrk(url: &str, connections: u32, seconds: u64, front: &[u32], tick_seconds: f64) -> Load {
    let cpu_before = cpu_ticks(front);
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-H"])
        .arg(format!("Host: {HOST}"))
        .arg(url)
        .output()
        .expect("while running wrk");
    let cpu_seconds = cpu_ticks(front).saturating_sub(cpu_before) as f64 * tick_seconds;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.contains("Non-2xx") || l.contains("Socket errors")) {
        println!("  warning ({url}, c={connections}): {}", line.trim());
    }
    let rps = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok());
    let p99 = text.lines().find_map(|l| l.trim().strip_prefix("99%")).and_then(|v| duration_ms(v.trim()));
    // `  189789 requests in 5.00s, 232.73MB read`
    let requests = text.lines().find_map(|l| l.trim().split_once(" requests in ")?.0.parse::<f64>().ok());
    match (rps, p99, requests) {
        (Some(rps), Some(p99_ms), Some(requests)) if requests > 0.0 => {
            Load { rps, p99_ms, cpu_us: cpu_seconds / requests * 1e6 }
        }
        _ => panic!("could not read wrk's output for {url}:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// wrk's durations: `812.00us`, `3.21ms`, `1.02s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    match &text[split..] {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

/// The certificate both fronts serve: a leaf for `bench.test` and `127.0.0.1` from a throwaway CA.
struct TlsFiles {
    chain: PathBuf,
    key: PathBuf,
}

fn write_certificate(dir: &Path) -> TlsFiles {
    let ca = InternalCa::load_or_create(&dir.join("ca")).unwrap();
    let (chain, key) = ca.issue(&[HOST.to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let files = TlsFiles { chain: dir.join("chain.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.chain, chain).unwrap();
    std::fs::write(&files.key, key).unwrap();
    files
}

fn certified_key(tls: &TlsFiles) -> Arc<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&tls.chain).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
    Arc::new(CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).unwrap())
}

/// The child process: Berth's proxy on 127.0.0.1 (HTTP and HTTPS) routing `bench.test` to the backend. Prints
/// `ready <http port> <https port>`, and exits when its stdin closes (the benchmark ended, however it ended).
fn proxy_server(args: &[String]) {
    let backend: SocketAddr = args[0].parse().unwrap();
    let tls = TlsFiles { chain: PathBuf::from(&args[1]), key: PathBuf::from(&args[2]) };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let proxy = Proxy::new(ProxyConfig::default());
        let mut table = RouteTable::new();
        table.insert(HOST, Arc::new(Backend::new(vec![backend])));
        proxy.publish(table);
        let resolver = Arc::new(CertResolver::new());
        let cert = certified_key(&tls);
        // `""` answers handshakes without SNI (wrk connecting to an IP address).
        resolver.publish(HashMap::from([(HOST.to_owned(), cert.clone()), (String::new(), cert)]));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(berth::tls::server_config(resolver).unwrap()));
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ready {} {}", http.local_addr().unwrap().port(), https.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(proxy.clone().serve(http, stop.clone(), Duration::from_secs(1)));
        let handshake = move |stream| {
            let acceptor = acceptor.clone();
            async move { berth::tls::accept(&acceptor, stream).await }
        };
        tokio::spawn(proxy.serve_with(https, stop.clone(), Duration::from_secs(1), ForwardedProto::Https, handshake));
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.ok();
        stop.cancel();
    });
}

/// The Berth proxy child, killed on drop.
struct BerthProxy {
    child: Child,
    http: u16,
    https: u16,
}

impl BerthProxy {
    fn start(backend: u16, tls: &TlsFiles) -> BerthProxy {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("proxy-server")
            .arg(format!("127.0.0.1:{backend}"))
            .arg(&tls.chain)
            .arg(&tls.key)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("while starting the proxy child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports: Vec<u16> = line.split_whitespace().skip(1).filter_map(|p| p.parse().ok()).collect();
        let proxy = BerthProxy { child, http: ports[0], https: ports[1] };
        wait_for(proxy.http);
        proxy
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/file", self.http)
    }

    fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/file", self.https)
    }
}

impl Drop for BerthProxy {
    fn drop(&mut self) {
        // Closing stdin stops it; kill in case it does not.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An nginx master (with `daemon off`, so the child is the master), stopped with SIGQUIT on drop so its workers
/// exit with it.
struct Nginx {
    child: Child,
    port: u16,
    tls_port: u16,
}

impl Nginx {
    /// The backend: one worker serving `/file` (1 KiB), keeping upstream connections alive.
    fn backend(dir: &Path) -> Nginx {
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/file"), vec![b'b'; 1024]).unwrap();
        let [port] = free_ports();
        let server = format!(
            "server {{ listen 127.0.0.1:{port} reuseport; keepalive_requests 1000000; root {}/www; }}",
            dir.display()
        );
        Nginx::start(dir, 1, &server, port, 0)
    }

    /// The reference front: 2 workers, plain and TLS listeners, proxy_pass to the backend over kept-alive
    /// HTTP/1.1 connections, setting the same forwarding headers Berth sets.
    fn front(dir: &Path, backend: u16, tls: &TlsFiles) -> Nginx {
        let [port, tls_port] = free_ports();
        let server = format!(
            "upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; keepalive_requests 1000000; }}
             server {{
                listen 127.0.0.1:{port}; listen 127.0.0.1:{tls_port} ssl;
                ssl_certificate {chain}; ssl_certificate_key {key}; ssl_protocols TLSv1.3 TLSv1.2;
                keepalive_requests 1000000;
                location / {{
                    proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
                    proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host;
                }}
             }}",
            chain = tls.chain.display(),
            key = tls.key.display()
        );
        Nginx::start(dir, 2, &server, port, tls_port)
    }

    fn start(dir: &Path, workers: u32, server: &str, port: u16, tls_port: u16) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let conf = format!(
            "worker_processes {workers}; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
             events {{ worker_connections 4096; }}
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
                    uwsgi_temp_path {d}; scgi_temp_path {d}; {server} }}",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-c", dir.join("nginx.conf").to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .expect("while starting nginx");
        let nginx = Nginx { child, port, tls_port };
        wait_for(port);
        nginx
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/file", self.port)
    }

    fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/file", self.tls_port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// Waits until something answers HTTP on `port` (a 404 counts: the server is up).
fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET /file HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 ")
            {
                assert!(answer.starts_with("HTTP/1.1 200"), "port {port} answered: {answer}");
                return;
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on port {port} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VmHWM` (peak resident set) of `pid` in KiB; 0 when it is gone.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
            line.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// The user and system CPU time of `pids` (each with all its threads) so far, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the parenthesised command: utime and stime are its 12th and 13th fields (proc(5)).
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
            Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
        })
        .sum()
}

/// The unit of `/proc/<pid>/stat`'s CPU times (`getconf CLK_TCK`, 100 on Linux as a rule).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `root` and its direct children (nginx's workers), from `/proc/<pid>/stat`.
fn process_tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The fields after the parenthesised command: state, then ppid.
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent == Some(root) {
            pids.push(pid);
        }
    }
    pids
}

/// Route and certificate lookups with 10 and 10,000 names, in ns per lookup.
fn lookups() {
    let key = certified_key_for_lookup();
    let mut per = HashMap::new();
    for size in [10usize, 10_000] {
        let names: Vec<String> = (0..size).map(|i| format!("app-{i}.example.com")).collect();
        let mut table = RouteTable::new();
        let backend = Arc::new(Backend::new(vec![SocketAddr::from(([127, 0, 0, 1], 8080))]));
        for name in &names {
            table.insert(name, backend.clone());
        }
        let resolver = CertResolver::new();
        resolver.publish(names.iter().map(|n| (n.clone(), key.clone())).collect());
        const LOOKUPS: usize = 2_000_000;
        let started = Instant::now();
        for i in 0..LOOKUPS {
            std::hint::black_box(table.get(std::hint::black_box(&names[i % size])));
        }
        let route_ns = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
        let started = Instant::now();
        for i in 0..LOOKUPS {
            std::hint::black_box(resolver.lookup(Some(std::hint::black_box(&names[i % size]))));
        }
        let cert_ns = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
        println!("lookups with {size:5} names: route {route_ns:6.1} ns | certificate by SNI {cert_ns:6.1} ns");
        per.insert(size, (route_ns, cert_ns));
    }
    let (small, large) = (per[&10], per[&10_000]);
    println!(
        "lookup cost 10k/10: route {:.2} | certificate {:.2}  (target: flat, ≈ 1)",
        large.0 / small.0,
        large.1 / small.1
    );
}

fn certified_key_for_lookup() -> Arc<CertifiedKey> {
    let dir = tempfile::tempdir().unwrap();
    certified_key(&write_certificate(dir.path()))
}
