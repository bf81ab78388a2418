//! A recording [`Host`]: the unit tests' proxy, and (with the `mock-host` feature) the native
//! conformance target's. Headers behave as in Envoy's header maps: names compare
//! case-insensitively, a set replaces every value, an add appends one, a remove deletes every one.
//! This is the host's behaviour, written here independently of the filter's code it checks.
//! Properties are whatever the caller put in; a call named in `failing` fails.

use std::collections::BTreeMap;

use crate::host::{Host, HostError, LogLevel, Metric};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct MockHost {
    pub now: u64,
    /// Nanoseconds the clock moves on every read (0: a still clock), so tests can see what a
    /// caller timed.
    pub clock_step: u64,
    pub clock_reads: std::cell::Cell<u64>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub properties: BTreeMap<Vec<String>, Vec<u8>>,
    pub body_chunk: Vec<u8>,
    pub local_reply: Option<LocalReply>,
    pub reset: bool,
    pub dispatches: Vec<Dispatch>,
    pub metrics: BTreeMap<Metric, u64>,
    pub logs: std::cell::RefCell<Vec<(LogLevel, String)>>,
    /// Host calls with these names fail.
    pub failing: Vec<&'static str>,
    /// Every property path read, joined with `.` (host calls cost microseconds; tests pin which
    /// ones a request makes).
    pub property_reads: std::cell::RefCell<Vec<String>>,
    /// How often the adapter asked the host to define its metrics.
    pub metrics_enabled: u32,
}

impl MockHost {
    /// A request as Envoy presents it: pseudo-headers first.
    pub fn request(method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> MockHost {
        let mut headers = vec![
            (":method".to_owned(), method.to_owned()),
            (":authority".to_owned(), authority.to_owned()),
            (":path".to_owned(), path.to_owned()),
            (":scheme".to_owned(), "http".to_owned()),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        MockHost {
            request_headers: headers,
            now: 1_000_000_000,
            ..MockHost::default()
        }
    }

    pub fn with_property(mut self, path: &[&str], value: &[u8]) -> MockHost {
        self.properties.insert(
            path.iter().map(|s| (*s).to_owned()).collect(),
            value.to_vec(),
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.request_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn metric(&self, metric: Metric) -> u64 {
        self.metrics.get(&metric).copied().unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(&self, call: &'static str) -> Result<(), HostError> {
        if self.failing.contains(&call) {
            Err(HostError::new(call, "InternalFailure"))
        } else {
            Ok(())
        }
    }
}

fn set(list: &mut Vec<(String, String)>, name: &str, value: &str) {
    list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    list.push((name.to_owned(), value.to_owned()));
}

impl Host for MockHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn now_nanos(&self) -> u64 {
        let reads = self.clock_reads.get();
        self.clock_reads.set(reads + 1);
        self.now + reads * self.clock_step
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        self.check("get_request_headers")?;
        Ok(self.request_headers.clone())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("set_header")?;
        set(&mut self.request_headers, name, value);
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("add_header")?;
        self.request_headers
            .push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.check("remove_header")?;
        self.request_headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("set_header")?;
        set(&mut self.response_headers, name, value);
        Ok(())
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("add_header")?;
        self.response_headers
            .push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.check("remove_header")?;
        self.response_headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn send_local_response(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.check("send_http_response")?;
        self.local_reply = Some(LocalReply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        Ok(())
    }

    fn reset_stream(&mut self) {
        self.reset = true;
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        self.check("get_property")?;
        self.property_reads.borrow_mut().push(path.join("."));
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        Ok(self.properties.get(&key).cloned())
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        self.check("set_property")?;
        self.properties.insert(
            path.iter().map(|s| (*s).to_owned()).collect(),
            value.to_vec(),
        );
        Ok(())
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.check("get_request_body")?;
        Ok(Some(
            self.body_chunk
                .get(..size)
                .unwrap_or(&self.body_chunk)
                .to_vec(),
        ))
    }

    fn enable_metrics(&mut self) {
        self.metrics_enabled += 1;
    }

    fn increment(&mut self, metric: Metric) {
        *self.metrics.entry(metric).or_default() += 1;
    }

    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        _timeout_ms: u64,
    ) -> Result<u32, HostError> {
        self.check("dispatch_http_call")?;
        self.dispatches.push(Dispatch {
            upstream: upstream.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
        });
        Ok(u32::try_from(self.dispatches.len()).unwrap_or(u32::MAX))
    }
}
