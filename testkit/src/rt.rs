//! Running async code from the blocking API.
//!
//! [`block_on`] drives a future on a fresh current-thread runtime. When the caller is itself inside a tokio
//! runtime (where `Runtime::block_on` would panic), it does so on a scoped helper thread instead, so the
//! blocking API works from anywhere (it still blocks the calling thread, as the name says).

use std::future::Future;

/// Runs `future` to completion on a private current-thread runtime.
pub fn block_on<F>(future: F) -> Result<F::Output, String>
where
    F: Future + Send,
    F::Output: Send,
{
    let run = move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building a tokio runtime: {e}"))?;
        Ok(runtime.block_on(future))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| {
            scope
                .spawn(run)
                .join()
                .map_err(|_| "the blocking helper thread panicked".to_owned())?
        })
    } else {
        run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_outside_a_runtime() {
        assert_eq!(block_on(async { 7 }).unwrap(), 7);
    }

    #[tokio::test]
    async fn works_inside_a_runtime() {
        let value = block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            8
        })
        .unwrap();
        assert_eq!(value, 8);
    }
}
