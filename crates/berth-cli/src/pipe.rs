//! A closed output pipe (`berth ls | head -1`) ends berth quietly, like other Unix tools,
//! instead of a panic with a backtrace: Rust ignores SIGPIPE, so `println!` panics on EPIPE.
//! The panic hook turns exactly that panic into exit status 141 (128 + SIGPIPE, what a shell
//! shows for a tool SIGPIPE ended); every other panic keeps the default report. A VM a
//! `berth run` had booted is stopped by its guard process when berth exits.

/// Installs the hook (first thing in `main`).
pub fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
