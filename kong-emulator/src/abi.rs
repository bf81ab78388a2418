//! The proxy-wasm ABI 0.2.1 host functions as ngx_wasm_module implements them
//! (src/common/proxy_wasm/ngx_proxy_wasm_host.c), plus the WASI functions a wasm32-wasip1 filter
//! imports. Everything a filter may call is here; an import the emulation does not model traps
//! with "not emulated: <name>", so a filter using it fails loudly instead of passing by accident.
//!
//! Status codes: `ngx_proxy_wasm_result_ok` 0, `_notfound` 1, `_badarg` 2, `_err` 10
//! (InternalFailure); a trap is an `Err` that stops the filter (ngx_wasm_module then fails the
//! filter chain: a 500 for a request, a failed load for a configuration).

use std::collections::BTreeSet;

use wasmi::{Caller, Error, Extern, Linker, Memory, Module};

use crate::stream::{Dispatch, LocalResponse, Prop, Status, Step, Stream};
use crate::version::KongVersion;
use crate::wire::{decode_map, encode_map};

const MAP_REQUEST_HEADERS: i32 = 0;
const MAP_RESPONSE_HEADERS: i32 = 2;
const MAP_CALL_RESPONSE_HEADERS: i32 = 6;
const BUFFER_REQUEST_BODY: i32 = 0;
const BUFFER_CALL_RESPONSE_BODY: i32 = 4;
const BUFFER_VM_CONFIGURATION: i32 = 6;
const BUFFER_PLUGIN_CONFIGURATION: i32 = 7;

/// What the host functions act on: the VM's configuration, its log, its metrics, and the request
/// a callback is running for.
#[derive(Debug)]
pub struct HostState {
    pub version: KongVersion,
    pub config: Vec<u8>,
    /// `[level] message` lines the filter logged (and WASI stdout/stderr).
    pub logs: Vec<String>,
    pub stream: Option<Stream>,
    /// Defined metrics (`pw.<filter>.<name>`, value), by id.
    pub metrics: Vec<(String, u64)>,
    pub next_token: u32,
    pub now_nanos: u64,
    pub rng: u64,
}

impl HostState {
    pub fn new(version: KongVersion, config: Vec<u8>) -> HostState {
        HostState {
            version,
            config,
            logs: Vec::new(),
            stream: None,
            metrics: Vec::new(),
            next_token: 1,
            now_nanos: 1_700_000_000_000_000_000,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

pub(crate) type Ctx<'a> = Caller<'a, HostState>;

pub(crate) fn trap(message: impl Into<String>) -> Error {
    Error::new(message.into())
}

fn memory(caller: &Ctx<'_>) -> Result<Memory, Error> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| trap("the module exports no memory"))
}

pub(crate) fn offset(value: i32) -> Result<usize, Error> {
    usize::try_from(value).map_err(|_| trap("negative pointer or length"))
}

pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    let memory = memory(caller)?;
    let mut buffer = vec![0u8; offset(len)?];
    memory
        .read(caller, offset(ptr)?, &mut buffer)
        .map_err(|e| trap(format!("invalid memory access: {e}")))?;
    Ok(buffer)
}

pub(crate) fn read_string(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<String, Error> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Error> {
    let memory = memory(caller)?;
    memory
        .write(caller, offset(ptr)?, bytes)
        .map_err(|e| trap(format!("invalid memory access: {e}")))
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Result<(), Error> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into guest memory allocated with `proxy_on_memory_allocate` and writes the
/// pointer and length where the guest asked.
fn give(caller: &mut Ctx<'_>, bytes: &[u8], ret_ptr: i32, ret_len: i32) -> Result<(), Error> {
    let size = i32::try_from(bytes.len()).map_err(|_| trap("value too large"))?;
    let allocate = caller
        .get_export("proxy_on_memory_allocate")
        .and_then(Extern::into_func)
        .ok_or_else(|| trap("the module exports no proxy_on_memory_allocate"))?
        .typed::<i32, i32>(&caller)?;
    let ptr = allocate.call(&mut *caller, size)?;
    write(caller, ptr, bytes)?;
    write_u32(caller, ret_ptr, u32::try_from(ptr).unwrap_or(0))?;
    write_u32(caller, ret_len, u32::try_from(size).unwrap_or(0))
}

fn status(status: Status) -> i32 {
    status as i32
}

fn stream<'c>(caller: &'c mut Ctx<'_>) -> Result<&'c mut Stream, Error> {
    caller
        .data_mut()
        .stream
        .as_mut()
        .ok_or_else(|| trap("no request: a request-only host call outside a request"))
}

/// The map a filter reads, by type.
fn map_of(caller: &mut Ctx<'_>, map_type: i32) -> Result<Option<Vec<(String, String)>>, Error> {
    let Some(stream) = caller.data_mut().stream.as_mut() else {
        return Ok(None);
    };
    Ok(match map_type {
        MAP_REQUEST_HEADERS => Some(stream.request_map()),
        MAP_RESPONSE_HEADERS => {
            let mut map = vec![(":status".to_owned(), stream.response_status.to_string())];
            map.extend(stream.response_headers.iter().cloned());
            Some(map)
        }
        MAP_CALL_RESPONSE_HEADERS => stream.call_response.as_ref().map(|(h, _)| h.clone()),
        _ => None,
    })
}

/// ngx_proxy_wasm_hfuncs_set_header_check: request headers may change until the response starts,
/// response headers until the response body.
fn check_set(stream: &Stream, map_type: i32) -> Result<(), Error> {
    let ok = match (map_type, stream.step) {
        (
            MAP_REQUEST_HEADERS,
            Step::RequestHeaders | Step::RequestBody | Step::DispatchResponse,
        ) => true,
        (
            MAP_RESPONSE_HEADERS,
            Step::RequestHeaders
            | Step::RequestBody
            | Step::ResponseHeaders
            | Step::DispatchResponse,
        ) => true,
        (MAP_REQUEST_HEADERS, _) => {
            return Err(trap(
                "can only set request headers before response is produced",
            ));
        }
        (MAP_RESPONSE_HEADERS, _) => {
            return Err(trap(
                "can only set response headers before \"on_response_body\"",
            ));
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(trap(format!("NYI - set_map bad map_type: {map_type}")))
    }
}

/// Edits a header map: `Some(value)` with `replace` sets, without adds; `None` removes.
fn edit_map(
    caller: &mut Ctx<'_>,
    map_type: i32,
    name: &str,
    value: Option<&str>,
    replace: bool,
) -> Result<i32, Error> {
    let stream = stream(caller)?;
    check_set(stream, map_type)?;
    match map_type {
        MAP_REQUEST_HEADERS => stream.set_request_header(name, value, replace),
        _ => {
            if name == ":status" {
                if let Some(code) = value.and_then(|v| v.parse().ok()) {
                    stream.response_status = code;
                }
                return Ok(status(Status::Ok));
            }
            if replace || value.is_none() {
                stream
                    .response_headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            }
            if let Some(value) = value {
                stream
                    .response_headers
                    .push((name.to_owned(), value.to_owned()));
            }
        }
    }
    Ok(status(Status::Ok))
}

/// Names of the imports this module implements (the rest trap as "not emulated").
fn define(linker: &mut Linker<HostState>) -> Result<BTreeSet<&'static str>, Error> {
    let mut defined = BTreeSet::new();
    macro_rules! host {
        ($module:literal, $name:literal, $func:expr) => {{
            linker.func_wrap($module, $name, $func)?;
            defined.insert($name);
        }};
    }

    host!("env", "proxy_log", |c: Ctx<'_>,
                               level: i32,
                               ptr: i32,
                               len: i32|
     -> Result<i32, Error> {
        let message = read_string(&c, ptr, len)?;
        let mut c = c;
        c.data_mut().logs.push(format!("[{level}] {message}"));
        Ok(status(Status::Ok))
    });
    host!("env", "proxy_get_current_time_nanoseconds", |mut c: Ctx<
        '_,
    >,
                                                        ret: i32|
     -> Result<
        i32,
        Error,
    > {
        let now = c.data().now_nanos;
        write(&mut c, ret, &now.to_le_bytes())?;
        Ok(status(Status::Ok))
    });
    host!("env", "proxy_set_effective_context", |_c: Ctx<'_>,
                                                 _id: i32|
     -> Result<
        i32,
        Error,
    > {
        Ok(status(Status::Ok))
    });
    host!("env", "proxy_continue_stream", |_c: Ctx<'_>,
                                           _kind: i32|
     -> Result<i32, Error> {
        Ok(status(Status::Ok))
    });
    host!("env", "proxy_close_stream", |mut c: Ctx<'_>,
                                        _kind: i32|
     -> Result<i32, Error> {
        stream(&mut c)?.closed = true;
        Ok(status(Status::Ok))
    });

    host!("env", "proxy_get_buffer_bytes", |mut c: Ctx<'_>,
                                            kind: i32,
                                            start: i32,
                                            max: i32,
                                            ret_ptr: i32,
                                            ret_len: i32|
     -> Result<i32, Error> {
        let data = match kind {
            BUFFER_PLUGIN_CONFIGURATION => c.data().config.clone(),
            BUFFER_VM_CONFIGURATION => Vec::new(),
            BUFFER_REQUEST_BODY => {
                let stream = stream(&mut c)?;
                if !matches!(stream.step, Step::RequestHeaders | Step::RequestBody) {
                    return Err(trap(
                        "can only get request body during \"on_request_body\", \"on_log\"",
                    ));
                }
                if stream.body.is_empty() {
                    return Ok(status(Status::NotFound));
                }
                stream.body.clone()
            }
            BUFFER_CALL_RESPONSE_BODY => match stream(&mut c)?.call_response.as_ref() {
                Some((_, body)) if !body.is_empty() => body.clone(),
                _ => return Ok(status(Status::NotFound)),
            },
            _ => return Ok(status(Status::BadArgument)),
        };
        let start = offset(start)?.min(data.len());
        let end = start.saturating_add(offset(max)?).min(data.len());
        let slice = data.get(start..end).unwrap_or_default();
        if !slice.is_empty() {
            give(&mut c, slice, ret_ptr, ret_len)?;
        }
        Ok(status(Status::Ok))
    });

    host!("env", "proxy_get_header_map_pairs", |mut c: Ctx<'_>,
                                                kind: i32,
                                                ret_ptr: i32,
                                                ret_len: i32|
     -> Result<
        i32,
        Error,
    > {
        match map_of(&mut c, kind)? {
            Some(map) => {
                give(&mut c, &encode_map(&map), ret_ptr, ret_len)?;
                Ok(status(Status::Ok))
            }
            None => Ok(status(Status::BadArgument)),
        }
    });
    host!("env", "proxy_get_header_map_value", |mut c: Ctx<'_>,
                                                kind: i32,
                                                kp: i32,
                                                kl: i32,
                                                ret_ptr: i32,
                                                ret_len: i32|
     -> Result<
        i32,
        Error,
    > {
        let key = read_string(&c, kp, kl)?;
        let value = map_of(&mut c, kind)?.and_then(|map| {
            map.into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&key))
                .map(|(_, v)| v)
        });
        match value {
            Some(value) => {
                give(&mut c, value.as_bytes(), ret_ptr, ret_len)?;
                Ok(status(Status::Ok))
            }
            None => Ok(status(Status::NotFound)),
        }
    });
    host!("env", "proxy_add_header_map_value", |mut c: Ctx<'_>,
                                                kind: i32,
                                                kp: i32,
                                                kl: i32,
                                                vp: i32,
                                                vl: i32|
     -> Result<
        i32,
        Error,
    > {
        let (key, value) = (read_string(&c, kp, kl)?, read_string(&c, vp, vl)?);
        edit_map(&mut c, kind, &key, Some(&value), false)
    });
    host!("env", "proxy_replace_header_map_value", |mut c: Ctx<'_>,
                                                    kind: i32,
                                                    kp: i32,
                                                    kl: i32,
                                                    vp: i32,
                                                    vl: i32|
     -> Result<
        i32,
        Error,
    > {
        let (key, value) = (read_string(&c, kp, kl)?, read_string(&c, vp, vl)?);
        edit_map(&mut c, kind, &key, Some(&value), true)
    });
    host!("env", "proxy_remove_header_map_value", |mut c: Ctx<'_>,
                                                   kind: i32,
                                                   kp: i32,
                                                   kl: i32|
     -> Result<
        i32,
        Error,
    > {
        let key = read_string(&c, kp, kl)?;
        edit_map(&mut c, kind, &key, None, true)
    });
    host!("env", "proxy_set_header_map_pairs", |mut c: Ctx<'_>,
                                                kind: i32,
                                                ptr: i32,
                                                len: i32|
     -> Result<
        i32,
        Error,
    > {
        let Some(pairs) = decode_map(&read(&c, ptr, len)?) else {
            return Ok(status(Status::InternalFailure));
        };
        let stream = stream(&mut c)?;
        check_set(stream, kind)?;
        if kind == MAP_REQUEST_HEADERS {
            stream.headers.clear();
            for (name, value) in &pairs {
                stream.set_request_header(name, Some(value), false);
            }
        } else {
            stream.response_headers = pairs;
        }
        Ok(status(Status::Ok))
    });

    host!("env", "proxy_get_property", |mut c: Ctx<'_>,
                                        pp: i32,
                                        pl: i32,
                                        ret_ptr: i32,
                                        ret_len: i32|
     -> Result<i32, Error> {
        let path = read_string(&c, pp, pl)?.replace('\0', ".");
        let prop = match c.data_mut().stream.as_mut() {
            Some(stream) => stream.get_property(&path),
            // Outside a request only the plugin's own properties exist ("cannot get ngx/host
            // properties outside of a request" for the rest).
            None if path == "plugin_name" => Prop::Value(b"gateway_wasm".to_vec()),
            None if path.starts_with("ngx.") || path.starts_with("kong.") => {
                Prop::Status(Status::InternalFailure)
            }
            None => Prop::Status(Status::NotFound),
        };
        match prop {
            Prop::Value(value) => {
                if !value.is_empty() {
                    give(&mut c, &value, ret_ptr, ret_len)?;
                }
                Ok(status(Status::Ok))
            }
            Prop::Status(code) => Ok(status(code)),
            Prop::Trap(message) => Err(trap(message)),
        }
    });
    host!("env", "proxy_set_property", |mut c: Ctx<'_>,
                                        pp: i32,
                                        pl: i32,
                                        vp: i32,
                                        vl: i32|
     -> Result<i32, Error> {
        let path = read_string(&c, pp, pl)?.replace('\0', ".");
        let value = read_string(&c, vp, vl)?;
        let prop = match c.data_mut().stream.as_mut() {
            Some(stream) => stream.set_property(&path, &value),
            None => Prop::Status(Status::InternalFailure),
        };
        match prop {
            Prop::Value(_) | Prop::Status(Status::Ok) => Ok(status(Status::Ok)),
            Prop::Status(code) => Ok(status(code)),
            Prop::Trap(message) => Err(trap(message)),
        }
    });

    host!("env", "proxy_send_local_response", |mut c: Ctx<'_>,
                                               code: i32,
                                               _rp: i32,
                                               _rl: i32,
                                               bp: i32,
                                               bl: i32,
                                               hp: i32,
                                               hl: i32,
                                               _grpc: i32|
     -> Result<
        i32,
        Error,
    > {
        let body = read(&c, bp, bl)?;
        let Some(headers) = decode_map(&read(&c, hp, hl)?) else {
            return Ok(status(Status::InternalFailure));
        };
        let stream = stream(&mut c)?;
        if stream.local.is_some() {
            return Err(trap("local response already stashed"));
        }
        stream.local = Some(LocalResponse {
            status: u16::try_from(code).unwrap_or(500),
            headers,
            body,
        });
        Ok(status(Status::Ok))
    });

    host!("env", "proxy_http_call", |mut c: Ctx<'_>,
                                     up: i32,
                                     ul: i32,
                                     hp: i32,
                                     hl: i32,
                                     bp: i32,
                                     bl: i32,
                                     _tp: i32,
                                     _tl: i32,
                                     _timeout: i32,
                                     token_ptr: i32|
     -> Result<i32, Error> {
        let upstream = read_string(&c, up, ul)?;
        let headers = decode_map(&read(&c, hp, hl)?);
        let body = read(&c, bp, bl)?;
        let token = c.data().next_token;
        let stream = stream(&mut c)?;
        if !matches!(
            stream.step,
            Step::RequestHeaders | Step::RequestBody | Step::DispatchResponse
        ) {
            return Err(trap(
                "can only send HTTP dispatch during \"on_request_headers\", \"on_request_body\", \"on_dispatch_response\", \"on_tick\"",
            ));
        }
        let Some(headers) = headers else {
            return Ok(status(Status::InternalFailure));
        };
        // ngx_http_proxy_wasm_dispatch: ":method" and ":path" are required.
        for required in [":method", ":path"] {
            if !headers.iter().any(|(n, _)| n == required) {
                stream
                    .log
                    .push(format!("[error] dispatch failed: no {required}"));
                return Ok(status(Status::InternalFailure));
            }
        }
        stream.dispatches.push(Dispatch {
            token,
            upstream,
            headers,
            body,
        });
        c.data_mut().next_token += 1;
        write_u32(&mut c, token_ptr, token)?;
        Ok(status(Status::Ok))
    });

    host!("env", "proxy_define_metric", |mut c: Ctx<'_>,
                                         kind: i32,
                                         np: i32,
                                         nl: i32,
                                         ret: i32|
     -> Result<i32, Error> {
        if !c.data().version.metrics() {
            return Err(trap(
                "host trap (function not yet implemented): proxy_define_metric",
            ));
        }
        if !(0..=2).contains(&kind) {
            return Err(trap(format!(
                "could not define metric: unknown type \"{kind}\""
            )));
        }
        let name = format!("pw.gateway_wasm.{}", read_string(&c, np, nl)?);
        if name.len() > 256 {
            return Err(trap(format!(
                "could not define metric: name \"{name}\" too long"
            )));
        }
        let metrics = &mut c.data_mut().metrics;
        let id = match metrics.iter().position(|(n, _)| *n == name) {
            Some(id) => id,
            None => {
                metrics.push((name, 0));
                metrics.len() - 1
            }
        };
        write_u32(&mut c, ret, u32::try_from(id).unwrap_or(0))?;
        Ok(status(Status::Ok))
    });
    host!("env", "proxy_increment_metric", |mut c: Ctx<'_>,
                                            id: i32,
                                            by: i64|
     -> Result<i32, Error> {
        if !c.data().version.metrics() {
            return Err(trap(
                "host trap (function not yet implemented): proxy_increment_metric",
            ));
        }
        let metric = usize::try_from(id)
            .ok()
            .and_then(|i| c.data_mut().metrics.get_mut(i));
        match metric {
            Some((_, value)) => {
                *value = value.saturating_add(u64::try_from(by).unwrap_or(0));
                Ok(status(Status::Ok))
            }
            None => Err(trap(format!(
                "could not increment metric id \"{id}\": metric not found"
            ))),
        }
    });

    crate::wasi::define(linker, &mut defined)?;
    Ok(defined)
}

/// A linker for `module`: the emulated host functions, and a trapping stub for every other import.
pub fn linker(engine: &wasmi::Engine, module: &Module) -> Result<Linker<HostState>, Error> {
    let mut linker = Linker::new(engine);
    let defined = define(&mut linker)?;
    for import in module.imports() {
        if defined.contains(import.name()) {
            continue;
        }
        if let Some(ty) = import.ty().func() {
            let name = format!("{}.{}", import.module(), import.name());
            linker.func_new(
                import.module(),
                import.name(),
                ty.clone(),
                move |_, _, _| Err(trap(format!("not emulated: {name}"))),
            )?;
        }
    }
    Ok(linker)
}
