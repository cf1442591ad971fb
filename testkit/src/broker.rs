//! A real Mosquitto broker on a free loopback port, configured by the test, stopped on drop; and a
//! subscriber that records everything it receives.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// A running Mosquitto.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: String,
    /// Sessions and queued messages are saved across restarts (stopped with SIGTERM).
    persistent: bool,
}

impl Broker {
    /// Anonymous, plain TCP.
    pub fn start() -> Self {
        Self::start_with("allow_anonymous true\n")
    }

    /// With extra configuration lines for the listener (TLS files, password file, ...).
    pub fn start_with(extra: &str) -> Self {
        assert!(Path::new(MOSQUITTO).exists(), "{MOSQUITTO} missing: install the Debian package mosquitto (make deps)");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Self { child: None, port: free_port(), dir, extra: extra.to_string(), persistent: false };
        broker.launch();
        broker
    }

    /// Anonymous, plain TCP, with persistence: subscribers with a persistent session get what was published
    /// while they (or the broker) were away. Stopped gracefully so the state is saved.
    pub fn start_persistent() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Started as root, Mosquitto drops to its own user: it must be able to write its state here.
        let state = dir.path().join("persistence");
        std::fs::create_dir_all(&state).expect("persistence dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let extra = format!("allow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n", state.display());
        let mut broker = Self { child: None, port: free_port(), dir, extra, persistent: true };
        broker.launch();
        broker
    }

    /// With a configuration written by `make(dir, port)`, which must declare its own listeners (the broker
    /// directory is given for certificates and password files).
    pub fn start_custom(make: impl FnOnce(&Path, u16) -> String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let extra = make(dir.path(), port);
        let mut broker = Self { child: None, port, dir, extra, persistent: false };
        broker.launch_raw();
        broker
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A folder the broker's files can live in (certificates, password files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) {
        let persistence = if self.persistent { "" } else { "persistence false\n" };
        let conf = format!("listener {} 127.0.0.1\n{persistence}log_dest stderr\nlog_type error\nlog_type warning\n{}", self.port, self.extra);
        self.write_conf_and_spawn(&conf);
    }

    fn launch_raw(&mut self) {
        let conf = format!("persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n{}", self.extra);
        self.write_conf_and_spawn(&conf);
    }

    fn write_conf_and_spawn(&mut self, text: &str) {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).expect("write mosquitto.conf");
        f.write_all(text.as_bytes()).expect("write mosquitto.conf");
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log file");
        let child = Command::new(MOSQUITTO).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log).spawn().expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {}: {}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker (the port stays reserved for [`Broker::restart`]); a persistent broker gets SIGTERM
    /// and saves its state.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.persistent {
                let _ = Command::new("kill").args(["-s", "TERM", &child.id().to_string()]).status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("payload on {} is not JSON ({e}): {:?}", self.topic, String::from_utf8_lossy(&self.payload)))
    }
}

/// A subscriber recording everything on `filter`, in a background thread.
pub struct Subscriber {
    messages: Arc<Mutex<Vec<Message>>>,
    client: Client,
}

impl Subscriber {
    pub fn connect(port: u16, filter: &str) -> Self {
        let id = format!("test-sub-{}", free_port());
        Self::connect_with(port, filter, &id, true)
    }

    /// With a persistent session (`clean_session = false`) under a fixed client id: with a persistent
    /// broker, messages published while this subscriber is disconnected are delivered when it is back.
    pub fn connect_persistent(port: u16, filter: &str, client_id: &str) -> Self {
        Self::connect_with(port, filter, client_id, false)
    }

    /// Signed in as `user` (a broker with a password file and an ACL).
    pub fn connect_as(port: u16, filter: &str, user: &str, password: &str) -> Self {
        let id = format!("test-sub-{}", free_port());
        Self::connect_full(port, filter, &id, true, Some((user, password)))
    }

    fn connect_with(port: u16, filter: &str, id: &str, clean: bool) -> Self {
        Self::connect_full(port, filter, id, clean, None)
    }

    fn connect_full(port: u16, filter: &str, id: &str, clean: bool, credentials: Option<(&str, &str)>) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(clean);
        options.set_max_packet_size(16 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 64);
        client.subscribe(filter, QoS::AtLeastOnce).expect("subscribe");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push(Message { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscription acknowledged");
        Self { messages, client }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until a message satisfies `pred`; returns it.
    pub fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| pred(m)) {
                return m;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> =
                    self.messages().iter().map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload).chars().take(120).collect::<String>())).collect();
                panic!("timed out waiting for {what}; received {} message(s):\n{}", seen.len(), seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}
