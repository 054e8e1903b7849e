//! Shared by knockd's and the simulator's fixtures (the simulator includes this file by path).

/// Collects a child's stderr as it comes, so a chatty process never blocks on a full pipe and
/// every line can be checked afterwards.
pub fn capture(
    mut stderr: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("log lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    log
}
