//! Explain traces: the same evaluation, narrated. `evaluate` runs with [`NoTrace`], whose methods are
//! empty and inlined away, so tracing costs nothing unless asked for.

/// Receives the story of one evaluation. Messages are built lazily: a closure is called only when the
/// tracer records it.
pub trait Tracer {
    fn enabled(&self) -> bool;
    fn note(&mut self, message: impl FnOnce() -> String);
}

/// The default: records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Tracer for NoTrace {
    #[inline(always)]
    fn enabled(&self) -> bool {
        false
    }

    #[inline(always)]
    fn note(&mut self, _message: impl FnOnce() -> String) {}
}

/// Records every step as a line of text, in order.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub lines: Vec<String>,
}

impl Tracer for Trace {
    fn enabled(&self) -> bool {
        true
    }

    fn note(&mut self, message: impl FnOnce() -> String) {
        self.lines.push(message());
    }
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
