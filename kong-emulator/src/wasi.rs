//! The WASI (wasm32-wasip1) functions a Rust filter imports: what the standard library calls for
//! randomness, the environment, writes to stdout/stderr (kept in the filter's log) and exit.

use std::collections::BTreeSet;

use wasmi::{Error, Linker};

use crate::abi::{Ctx, HostState, offset, read, trap, write, write_u32};

pub(crate) fn define(
    linker: &mut Linker<HostState>,
    defined: &mut BTreeSet<&'static str>,
) -> Result<(), Error> {
    macro_rules! host {
        ($module:literal, $name:literal, $func:expr) => {{
            linker.func_wrap($module, $name, $func)?;
            defined.insert($name);
        }};
    }
    host!("wasi_snapshot_preview1", "random_get", |mut c: Ctx<'_>,
                                                   ptr: i32,
                                                   len: i32|
     -> Result<
        i32,
        Error,
    > {
        let mut bytes = vec![0u8; offset(len)?];
        for byte in &mut bytes {
            let state = &mut c.data_mut().rng;
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *byte = state.to_le_bytes()[0];
        }
        write(&mut c, ptr, &bytes)?;
        Ok(0)
    });
    host!(
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| -> Result<i32, Error> {
            write_u32(&mut c, count, 0)?;
            write_u32(&mut c, size, 0)?;
            Ok(0)
        }
    );
    host!("wasi_snapshot_preview1", "environ_get", |_c: Ctx<'_>,
                                                    _env: i32,
                                                    _buf: i32|
     -> Result<
        i32,
        Error,
    > { Ok(0) });
    host!("wasi_snapshot_preview1", "fd_write", |mut c: Ctx<'_>,
                                                 fd: i32,
                                                 iovs: i32,
                                                 count: i32,
                                                 written: i32|
     -> Result<
        i32,
        Error,
    > {
        let mut text = Vec::new();
        for i in 0..count {
            let iov = read(&c, iovs + i * 8, 8)?;
            let word = |at: usize| {
                iov.get(at..at + 4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_le_bytes)
            };
            let (ptr, len) = (word(0), word(4));
            text.extend(read(
                &c,
                i32::try_from(ptr).unwrap_or(0),
                i32::try_from(len).unwrap_or(0),
            )?);
        }
        let total = u32::try_from(text.len()).unwrap_or(0);
        c.data_mut()
            .logs
            .push(format!("[fd {fd}] {}", String::from_utf8_lossy(&text)));
        write_u32(&mut c, written, total)?;
        Ok(0)
    });
    host!("wasi_snapshot_preview1", "proc_exit", |_c: Ctx<'_>,
                                                  code: i32|
     -> Result<
        (),
        Error,
    > {
        Err(trap(format!("proc_exit({code})")))
    });
    Ok(())
}
