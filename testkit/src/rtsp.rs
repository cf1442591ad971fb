//! A real RTSP server (gst-rtsp-server) on a loopback port, run on its own GLib main loop inside the test
//! process. "Killing" it closes every client connection and the listening socket at once, as a camera
//! losing power does; it can then be started again on the same port, with other settings.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// What the server streams.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    /// A still image (from `../shared/data`) as a live video stream, encoded on the fly.
    Still { image: PathBuf, width: u32, height: u32, codec: Codec },
    /// The same, but nothing ever reaches the client: the session is set up and then stays silent.
    Silent { image: PathBuf, width: u32, height: u32 },
    /// An H.264 MP4 file served as is (no re-encoding), shared by all clients.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// Server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    pub feed: Feed,
    /// Basic authentication `(user, password)`.
    pub credentials: Option<(String, String)>,
}

impl ServerSpec {
    pub fn still(width: u32, height: u32) -> Self {
        Self { feed: Feed::Still { image: crate::data("scenes/hy_test_img.jpg"), width, height, codec: Codec::H264 }, credentials: None }
    }
}

fn launch(feed: &Feed) -> String {
    let still = |image: &PathBuf, w: u32, h: u32| {
        format!(
            "multifilesrc location={} loop=true caps=image/jpeg,framerate=25/1 ! jpegdec ! videoconvert ! videoscale ! video/x-raw,width={w},height={h},format=I420",
            image.display()
        )
    };
    match feed {
        Feed::Still { image, width, height, codec: Codec::H264 } => format!(
            "( {} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=1500 ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            still(image, *width, *height)
        ),
        Feed::Still { image, width, height, codec: Codec::H265 } => format!(
            "( {} ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=1500 ! rtph265pay name=pay0 pt=96 config-interval=1 )",
            still(image, *width, *height)
        ),
        Feed::Silent { image, width, height } => format!(
            "( {} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! valve drop=true drop-mode=forward-sticky-events ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            still(image, *width, *height)
        ),
        Feed::File(path) => format!("( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )", path.display()),
    }
}

/// A running server; stopped (killed) on drop.
pub struct RtspServer {
    port: u16,
    spec: ServerSpec,
    running: Option<(glib::MainContext, glib::MainLoop, JoinHandle<()>)>,
}

impl RtspServer {
    /// Starts on a free loopback port, serving `/stream`.
    pub fn start(spec: ServerSpec) -> Self {
        let port = crate::broker::free_port();
        let mut server = Self { port, spec, running: None };
        server.run();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://[user:password@]127.0.0.1:PORT/stream`, with the given credentials (not necessarily right).
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}/stream", self.port),
            None => format!("rtsp://127.0.0.1:{}/stream", self.port),
        }
    }

    fn run(&mut self) {
        gst::init().expect("GStreamer");
        let (ready_tx, ready_rx) = mpsc::channel();
        let (port, spec) = (self.port, self.spec.clone());
        let thread = std::thread::spawn(move || {
            let ctx = glib::MainContext::new();
            let main_loop = glib::MainLoop::new(Some(&ctx), false);
            let attached = ctx
                .with_thread_default(|| {
                    let server = rtsp::RTSPServer::new();
                    server.set_address("127.0.0.1");
                    server.set_service(&port.to_string());
                    let factory = rtsp::RTSPMediaFactory::new();
                    factory.set_launch(&launch(&spec.feed));
                    factory.set_shared(true);
                    if let Some((user, password)) = &spec.credentials {
                        let auth = rtsp::RTSPAuth::new();
                        let token = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer").build();
                        auth.add_basic(&rtsp::RTSPAuth::make_basic(user, password), &token);
                        server.set_auth(Some(&auth));
                        factory.add_role_from_structure(
                            &gst::Structure::builder("viewer").field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true).field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true).build(),
                        );
                    }
                    server.mount_points().expect("mount points").add_factory("/stream", factory);
                    let id = server.attach(Some(&ctx)).map_err(|e| e.to_string())?;
                    Ok::<_, String>((server, id))
                })
                .expect("thread default context");
            let (server, source) = match attached {
                Ok(v) => v,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok((ctx.clone(), main_loop.clone())));
            ctx.with_thread_default(|| main_loop.run()).expect("run loop");
            // Killed: drop every client and stop listening.
            server.client_filter(Some(&mut |_, client| {
                client.close();
                rtsp::RTSPFilterResult::Remove
            }));
            if let Some(src) = ctx.find_source_by_id(&source) {
                src.destroy();
            }
            if let Some(pool) = server.session_pool() {
                pool.cleanup();
            }
            while ctx.iteration(false) {}
        });
        match ready_rx.recv().expect("server thread") {
            Ok((ctx, main_loop)) => self.running = Some((ctx, main_loop, thread)),
            Err(e) => panic!("RTSP server cannot listen on {}: {e}", self.port),
        }
        // Wait until it accepts connections.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "RTSP server not listening on {}", self.port);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the server: every client connection is closed and the port stops listening.
    pub fn kill(&mut self) {
        if let Some((ctx, main_loop, thread)) = self.running.take() {
            let ml = main_loop.clone();
            ctx.invoke(move || ml.quit());
            let _ = thread.join();
        }
    }

    /// Starts it again on the same port, possibly with other settings (another resolution).
    pub fn restart(&mut self, spec: ServerSpec) {
        self.kill();
        self.spec = spec;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => {
                    drop(l);
                    break;
                }
                Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
                Err(e) => panic!("port {} not released: {e}", self.port),
            }
        }
        self.run();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP server sending a still image as an MJPEG stream (`multipart/x-mixed-replace`), like IP cameras'
/// `/video.mjpg`. Serves every connection until dropped.
pub struct MjpegServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MjpegServer {
    pub fn start(image: &std::path::Path, fps: u32) -> Self {
        use std::io::Write;
        let jpeg = std::fs::read(image).expect("read JPEG");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (jpeg, flag) = (jpeg.clone(), flag.clone());
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let mut request = [0u8; 2048];
                            let _ = std::io::Read::read(&mut conn, &mut request);
                            let header = "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nCache-Control: no-cache\r\n\r\n";
                            if conn.write_all(header.as_bytes()).is_err() {
                                return;
                            }
                            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                                let part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len());
                                if conn.write_all(part.as_bytes()).and_then(|_| conn.write_all(&jpeg)).and_then(|_| conn.write_all(b"\r\n")).is_err() {
                                    return;
                                }
                                std::thread::sleep(std::time::Duration::from_millis(1000 / fps.max(1) as u64));
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Self { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/video.mjpg", self.port)
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
