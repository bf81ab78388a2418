//! What the soak measured, as printed and as `target/soak/report.json`.

use std::path::Path;

/// Memory of one process over a stretch of the run, in KiB.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct RssSpan {
    pub(super) process: String,
    pub(super) from_edit: u32,
    pub(super) to_edit: u32,
    pub(super) start_kb: u64,
    pub(super) end_kb: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Report {
    pub(super) edits: u32,
    pub(super) valid_edits: u32,
    pub(super) syntax_errors: u32,
    pub(super) invalid_rules: u32,
    pub(super) pushes: u32,
    pub(super) rejected_configs: u64,
    pub(super) edits_not_applied: Vec<String>,
    pub(super) requests: u64,
    pub(super) ok: u64,
    pub(super) intended_404: u64,
    pub(super) unintended: u64,
    pub(super) unintended_examples: Vec<String>,
    pub(super) socket_errors: u64,
    pub(super) socket_error_examples: Vec<String>,
    pub(super) stale_keepalive_retries: u64,
    pub(super) envoy_restarted_at_edit: u32,
    pub(super) shim_restarted_at_edit: u32,
    pub(super) rss: Vec<RssSpan>,
    pub(super) seconds: f64,
}

pub(super) fn print_report(report: &Report, root: &Path, work: &Path) {
    println!();
    println!("soak results ({:.0} s)", report.seconds);
    println!(
        "  edits          {} ({} valid, {} YAML syntax errors, {} invalid rules)",
        report.edits, report.valid_edits, report.syntax_errors, report.invalid_rules
    );
    println!(
        "  pushes         {} (each confirmed serving in Envoy)",
        report.pushes
    );
    println!(
        "  rejected       {} configs (the syntax errors)",
        report.rejected_configs
    );
    println!(
        "  requests       {} ({} as configured, {} intended 404s while the rule was dropped)",
        report.requests, report.ok, report.intended_404
    );
    println!("  unintended     {}", report.unintended);
    for example in &report.unintended_examples {
        println!("                 {example}");
    }
    println!(
        "  socket errors  {} (and {} stale keep-alive connections retried)",
        report.socket_errors, report.stale_keepalive_retries
    );
    for example in &report.socket_error_examples {
        println!("                 {example}");
    }
    for problem in &report.edits_not_applied {
        println!("  NOT APPLIED    {problem}");
    }
    println!(
        "  restarts       Envoy (hot) after edit {}, controller-shim after edit {}",
        report.envoy_restarted_at_edit, report.shim_restarted_at_edit
    );
    for span in &report.rss {
        println!(
            "  RSS {:<16} edits {:>4}-{:<4} {:>7} KiB -> {:>7} KiB ({:+.1}%)",
            span.process,
            span.from_edit,
            span.to_edit,
            span.start_kb,
            span.end_kb,
            (span.end_kb as f64 - span.start_kb as f64) * 100.0 / (span.start_kb.max(1) as f64)
        );
    }
    println!(
        "  report         {}",
        crate::demo::shown(root, &work.join("report.json"))
    );
}
