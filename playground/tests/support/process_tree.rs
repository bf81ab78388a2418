//! A child process and everything it started, killed together: the browser tests' guard, so a
//! failing test never leaves chromedriver's Chromium running (included by `browser.rs`).

use std::process::{Child, Command};

/// A child process and every process it started, all killed when dropped — also while a failed
/// assertion unwinds the test. chromedriver starts Chromium, which starts its zygote, renderers
/// and GPU process: killing chromedriver alone would leave them running, re-parented to init.
///
/// The child is started in a process group of its own ([`ProcessTree::command`]); on drop the
/// tree is found by parent pid in `/proc` (Chromium's helpers may leave the group), stopped
/// until no new process appears (so none is forked between listing and killing), then killed
/// together with the group.
pub struct ProcessTree(pub Child);

impl ProcessTree {
    /// `program` set up to be the root of a tree: in a new process group.
    pub fn command(program: &str) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(program);
        command.process_group(0);
        command
    }

    fn pid(raw: u32) -> Option<rustix::process::Pid> {
        i32::try_from(raw)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
    }
}

/// `(pid, parent pid)` of every process, from `/proc/PID/stat` (the parent pid is the second
/// field after the parenthesised command name, which may itself hold spaces and parentheses).
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent = after_name.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect()
}

/// Every descendant of `root`, parents before their children.
fn descendants(root: u32) -> Vec<u32> {
    let parents = process_parents();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, _) in parents.iter().filter(|(_, p)| *p == parent) {
            if !out.contains(pid) {
                out.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    out
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        use rustix::process::{Signal, kill_process, kill_process_group};
        let root = self.0.id();
        let mut tree = Vec::new();
        if let Some(pid) = ProcessTree::pid(root) {
            let _ = kill_process(pid, Signal::STOP);
        }
        // Stopped processes fork no more: a few rounds find the whole tree.
        for _ in 0..10 {
            let found: Vec<u32> = descendants(root)
                .into_iter()
                .filter(|pid| !tree.contains(pid))
                .collect();
            if found.is_empty() {
                break;
            }
            for pid in found {
                if let Some(p) = ProcessTree::pid(pid) {
                    let _ = kill_process(p, Signal::STOP);
                }
                tree.push(pid);
            }
        }
        for pid in &tree {
            if let Some(p) = ProcessTree::pid(*pid) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        if let Some(group) = ProcessTree::pid(root) {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Whether `pid` is still a process that runs (a zombie has finished).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    }

    /// What the browser's guard promises: a test that panics leaves nothing of the tree running. A
    /// shell with two background children stands in for chromedriver and Chromium.
    #[test]
    fn a_panicking_test_leaves_no_process_of_the_tree_behind() {
        let tree = ProcessTree(
            ProcessTree::command("sh")
                .args(["-c", "sleep 300 & sleep 300 & wait"])
                .spawn()
                .unwrap(),
        );
        let root = tree.0.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let children = loop {
            let found = descendants(root);
            if found.len() >= 2 {
                break found;
            }
            assert!(Instant::now() < deadline, "the shell started {found:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _tree = tree;
            panic!("a failing test");
        }));
        assert!(unwound.is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        while children.iter().any(|pid| running(*pid)) {
            assert!(
                Instant::now() < deadline,
                "still running after the panic: {:?}",
                children
                    .iter()
                    .filter(|pid| running(**pid))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running(root));
    }
}
