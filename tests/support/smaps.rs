// Resident memory of a process's file mappings, from /proc/PID/smaps: included by
// tests/it/main.rs (`#[path]`) and by src/geo/db.rs's tests (`include!`, which allows no
// inner attributes here).

/// Resident KiB of process `pid`'s mappings of files whose path ends with `suffix`
/// (`None` without /proc).
#[allow(dead_code, unreachable_pub)]
pub fn resident_kib(pid: u32, suffix: &str) -> Option<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut inside = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        // A mapping's first line starts with its address range, `start-end`.
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.ends_with(suffix);
        } else if let (true, Some(v)) = (inside, line.strip_prefix("Rss:")) {
            kib += v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()?;
        }
    }
    Some(kib)
}
