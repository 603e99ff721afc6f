//! `cargo xtask kafka start|stop|status`: a real single-node Apache Kafka broker in KRaft
//! mode, from Maven Central's jars, with no Docker.
//!
//! Jars are fetched once with Maven into the cache folder. Each broker has a state folder
//! holding its config, data, log and pid file; a second `start` reuses a running broker.

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{self, alive, answers, tail};

/// The broker version; `org.apache.kafka:kafka_2.13` on Maven Central.
pub const KAFKA_VERSION: &str = "4.3.1";
/// The log4j2 version of Kafka's own dependency tree, for the slf4j binding.
const LOG4J_VERSION: &str = "2.25.4";
const DEFAULT_PORT: u16 = 9092;
const BROKER_LOG_CONFIG: &str = "log4j2-broker.properties";
const TOOLS_LOG_CONFIG: &str = "log4j2-tools.properties";
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to run one broker.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Client port; the controller listens on the next one.
    pub port: u16,
    /// Config, data, log and pid file of this broker.
    pub state_dir: PathBuf,
}

impl Broker {
    pub fn new(port: Option<u16>, state_dir: Option<PathBuf>) -> Broker {
        let port = port.unwrap_or(DEFAULT_PORT);
        let state_dir =
            state_dir.unwrap_or_else(|| cache_dir().join(format!("kafka/broker-{port}")));
        Broker { port, state_dir }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_file(&self) -> PathBuf {
        self.state_dir.join("broker.log")
    }

    fn pid_file(&self) -> PathBuf {
        self.state_dir.join("broker.pid")
    }

    /// The pid of this broker's process, if it is alive.
    fn running_pid(&self) -> Option<u32> {
        process::running_pid(&self.pid_file())
    }

    pub fn start(&self) -> Result<()> {
        if let Some(pid) = self.running_pid() {
            if answers(self.port) {
                println!("kafka: already running (pid {pid}) at {}", self.bootstrap());
                return Ok(());
            }
            bail!(
                "a broker process (pid {pid}) exists but does not answer at {}; run `cargo xtask kafka stop` first (log: {})",
                self.bootstrap(),
                self.log_file().display()
            );
        }
        if answers(self.port) {
            bail!(
                "port {} is taken by another process; choose another with --port",
                self.port
            );
        }
        let libs = ensure_jars()?;
        fs::create_dir_all(self.state_dir.join("data"))
            .with_context(|| format!("creating {}", self.state_dir.display()))?;
        let config = self.write_config()?;
        if !self.state_dir.join("data/meta.properties").exists() {
            self.format_storage(&libs, &config)?;
        }

        println!(
            "kafka: starting the broker at {} (log: {})",
            self.bootstrap(),
            self.log_file().display()
        );
        let log = fs::File::create(self.log_file())
            .with_context(|| format!("creating {}", self.log_file().display()))?;
        let child = java(&libs, &self.state_dir.join(BROKER_LOG_CONFIG))
            .args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "kafka.Kafka"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so Ctrl-C in this terminal does not reach it.
            .process_group(0)
            .spawn()
            .context("starting java; is a JDK 17 or newer on PATH?")?;
        fs::write(self.pid_file(), child.id().to_string())?;

        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if !alive(child.id()) {
                bail!(
                    "the broker exited during start-up; read {}\n{}",
                    self.log_file().display(),
                    tail(&self.log_file())
                );
            }
            if answers(self.port) && self.topics(&libs, &["--list"]).is_ok() {
                println!(
                    "kafka: ready at {} after {:.1?}",
                    self.bootstrap(),
                    started.elapsed()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!(
            "the broker did not answer within {START_TIMEOUT:?}; read {}\n{}",
            self.log_file().display(),
            tail(&self.log_file())
        )
    }

    pub fn stop(&self) -> Result<()> {
        let Some(pid) = self.running_pid() else {
            println!("kafka: not running");
            let _ = fs::remove_file(self.pid_file());
            return Ok(());
        };
        println!("kafka: stopping the broker (pid {pid})");
        process::stop(pid, STOP_TIMEOUT)?;
        let _ = fs::remove_file(self.pid_file());
        println!("kafka: stopped");
        Ok(())
    }

    /// Prints the broker's state; an error when it is not running, for scripts.
    pub fn status(&self) -> Result<()> {
        match self.running_pid() {
            Some(pid) if answers(self.port) => {
                println!(
                    "kafka: running (pid {pid}) at {}; log: {}",
                    self.bootstrap(),
                    self.log_file().display()
                );
                Ok(())
            }
            Some(pid) => bail!(
                "kafka: process {pid} is alive but does not answer at {}",
                self.bootstrap()
            ),
            None => bail!("kafka: not running (state in {})", self.state_dir.display()),
        }
    }

    /// `kafka topics ARGS…`: Kafka's own topic tool against this broker.
    pub fn topics_command(&self, args: &[String]) -> Result<()> {
        if self.running_pid().is_none() {
            bail!("kafka: not running; start it with `cargo xtask kafka start`");
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        print!("{}", self.topics(&ensure_jars()?, &args)?);
        Ok(())
    }

    /// Runs Kafka's own topic tool against this broker, for checks and topic set-up.
    pub fn topics(&self, libs: &Path, args: &[&str]) -> Result<String> {
        self.tool(libs, "org.apache.kafka.tools.TopicCommand", args, b"")
    }

    /// Runs one of Kafka's command-line tools (a class of `org.apache.kafka.tools`)
    /// against this broker with `input` on its standard input; returns its output.
    pub fn tool(&self, libs: &Path, class: &str, args: &[&str], input: &[u8]) -> Result<String> {
        use std::io::Write as _;
        let mut child = java(libs, &self.state_dir.join(TOOLS_LOG_CONFIG))
            .arg(class)
            .args(["--bootstrap-server", &self.bootstrap()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running Kafka's {class}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .with_context(|| format!("writing to Kafka's {class}"))?;
        }
        let output = child
            .wait_with_output()
            .with_context(|| format!("running Kafka's {class}"))?;
        if !output.status.success() {
            bail!(
                "{class} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn write_config(&self) -> Result<PathBuf> {
        let data = self.state_dir.join("data");
        let controller = self
            .port
            .checked_add(1)
            .context("--port must leave room for the controller port above it")?;
        let config = format!(
            "# Written by `cargo xtask kafka start`; rewritten on every start.\n\
             process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=6\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             # One consumer joining a group should not wait for others that never come.\n\
             group.initial.rebalance.delay.ms=0\n\
             # Consumer-protocol groups (KIP-848) notice a killed member within 10 s\n\
             # rather than 45, and members learn of assignments within a second.\n\
             group.consumer.min.session.timeout.ms=10000\n\
             group.consumer.session.timeout.ms=10000\n\
             group.consumer.min.heartbeat.interval.ms=1000\n\
             group.consumer.heartbeat.interval.ms=1000\n",
            port = self.port,
            data = data.display(),
        );
        let path = self.state_dir.join("server.properties");
        fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        // The broker logs at INFO into its log file; the command-line tools only warn,
        // on standard error, so that their output stays readable.
        for (file, level, target) in [
            (BROKER_LOG_CONFIG, "INFO", "SYSTEM_OUT"),
            (TOOLS_LOG_CONFIG, "WARN", "SYSTEM_ERR"),
        ] {
            let log4j = format!(
                "rootLogger.level = {level}\n\
                 rootLogger.appenderRef.out.ref = OUT\n\
                 appender.out.type = Console\n\
                 appender.out.name = OUT\n\
                 appender.out.target = {target}\n\
                 appender.out.layout.type = PatternLayout\n\
                 appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            );
            fs::write(self.state_dir.join(file), log4j)?;
        }
        Ok(path)
    }

    fn format_storage(&self, libs: &Path, config: &Path) -> Result<()> {
        let cluster_id = cluster_id()?;
        println!("kafka: formatting storage for cluster {cluster_id}");
        let output = java(libs, &self.state_dir.join(TOOLS_LOG_CONFIG))
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                // One argument with `=`: an id may begin with `-`, which the tool's
                // parser would otherwise read as an option (1 start in 64 failed so).
                &format!("--cluster-id={cluster_id}"),
                "-c",
            ])
            .arg(config)
            .output()
            .context("running Kafka's StorageTool")?;
        if !output.status.success() {
            bail!(
                "formatting Kafka storage failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

/// A `java` command with Kafka's jars on the class path and the given log4j2 config.
fn java(libs: &Path, log_config: &Path) -> Command {
    let mut command = Command::new("java");
    command
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            log_config.display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", libs.display()));
    command
}

/// The folder of Kafka's jars, fetched with Maven the first time.
pub fn ensure_jars() -> Result<PathBuf> {
    let dir = cache_dir().join(format!("kafka/kafka-{KAFKA_VERSION}"));
    let libs = dir.join("libs");
    let complete = dir.join("complete");
    if complete.exists() {
        return Ok(libs);
    }
    println!(
        "kafka: fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {} (once)",
        dir.display()
    );
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pom = format!(
        r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>music-analytics</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
"#
    );
    fs::write(dir.join("pom.xml"), pom)?;
    let _ = fs::remove_dir_all(&libs);
    let status = Command::new("mvn")
        .args([
            "-q",
            "-B",
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            "-DoutputDirectory=libs",
        ])
        .current_dir(&dir)
        .status()
        .context("running Maven (mvn); is it installed?")?;
    if !status.success() {
        bail!(
            "Maven could not fetch the Kafka jars (in {}): {status}",
            dir.display()
        );
    }
    fs::File::create(&complete)?.write_all(KAFKA_VERSION.as_bytes())?;
    Ok(libs)
}

/// A broker for one test: on free ports, with its own state folder under the system's
/// temporary folder, stopped and removed when dropped however the test ends.
#[derive(Debug)]
pub struct ScratchBroker(Broker);

impl ScratchBroker {
    /// Starts a broker whose state folder is named after `name` and the port.
    pub fn start(name: &str) -> Result<ScratchBroker> {
        let port = free_port_pair();
        let state_dir = std::env::temp_dir().join(format!("{name}-kafka-{port}"));
        let _ = fs::remove_dir_all(&state_dir);
        let scratch = ScratchBroker(Broker::new(Some(port), Some(state_dir)));
        scratch.0.start()?;
        Ok(scratch)
    }

    pub fn broker(&self) -> &Broker {
        &self.0
    }
}

impl Drop for ScratchBroker {
    fn drop(&mut self) {
        let _ = self.0.stop();
        let _ = fs::remove_dir_all(&self.0.state_dir);
    }
}

/// Two free neighbouring ports on 127.0.0.1: a broker's and its controller's.
pub fn free_port_pair() -> u16 {
    loop {
        let Ok(port) = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
        else {
            continue;
        };
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// `$XDG_CACHE_HOME/music-analytics`, or `~/.cache/music-analytics`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("music-analytics")
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding.
fn cluster_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = u128::from_be_bytes(bytes);
    // 21 characters carry the first 126 bits; the 22nd the last two and four zero bits.
    let mut id: String = (0..21)
        .map(|i| ALPHABET[((bits >> (122 - 6 * i)) & 63) as usize] as char)
        .collect();
    id.push(ALPHABET[((bits & 3) << 4) as usize] as char);
    Ok(id)
}
