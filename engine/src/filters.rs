//! Route filters applied during evaluation, one step per filter kind: header modifiers, URL
//! rewrites, redirects, mirrors and CORS. Each step either adds to the [`Edits`] of a forward or
//! answers the request itself.

use std::borrow::Cow;
use std::ops::ControlFlow;

use crate::config::{HeaderModifier, PathMatchType, PathModifier, RequestRedirect, UrlRewrite};
use crate::cors::CompiledCors;
use crate::decision::*;
use crate::eval::{Context, respond};
use crate::request::{RandomSource, below, split_query};
use crate::table::{CompiledFilter, RouteTable};
use crate::trace::Tracer;

impl RouteTable {
    /// Applies filters in order; breaks with a decision when one of them answers the request
    /// itself (redirect, CORS preflight, unresolved filter).
    pub(crate) fn apply_filters<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        filters: &'a [CompiledFilter],
        edits: &mut Edits<'a>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> ControlFlow<Decision<'a>> {
        for filter in filters {
            match filter {
                CompiledFilter::Unresolved(reason) => {
                    tracer.note(|| format!("500: unresolved filter ({reason})"));
                    return ControlFlow::Break(respond(
                        Some(cx.listener),
                        Some(cx.identity),
                        500,
                        LocalReason::UnresolvedFilter { reason },
                    ));
                }
                CompiledFilter::RequestHeaders(m) => {
                    push_edits(m, &mut edits.request);
                    tracer.note(|| format!("RequestHeaderModifier: {}", describe_modifier(m)));
                }
                CompiledFilter::ResponseHeaders(m) => {
                    push_edits(m, &mut edits.response);
                    tracer.note(|| format!("ResponseHeaderModifier: {}", describe_modifier(m)));
                }
                CompiledFilter::Rewrite(rewrite) => self.rewrite(cx, rewrite, edits, tracer),
                CompiledFilter::Redirect(redirect) => {
                    return ControlFlow::Break(self.redirect(cx, redirect, edits, tracer));
                }
                CompiledFilter::Mirror {
                    backend,
                    numerator,
                    denominator,
                } => self.mirror(*backend, (*numerator, *denominator), edits, random, tracer),
                CompiledFilter::Cors(cors) => self.cors(cx, cors, edits, tracer)?,
            }
        }
        ControlFlow::Continue(())
    }

    /// URLRewrite: a new Host and/or path for the upstream request.
    fn rewrite<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        rewrite: &'a UrlRewrite,
        edits: &mut Edits<'a>,
        tracer: &mut T,
    ) {
        if let Some(hostname) = &rewrite.hostname {
            edits.authority = Some(hostname);
        }
        if let Some(modifier) = &rewrite.path {
            edits.path = Some(self.modified_path(cx, modifier));
        }
        tracer.note(|| {
            format!(
                "URLRewrite: host {} path {}",
                edits.authority.unwrap_or("<unchanged>"),
                edits.path.as_deref().unwrap_or("<unchanged>")
            )
        });
    }

    /// RequestRedirect: the answer, with the response header edits gathered so far.
    fn redirect<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        redirect: &'a RequestRedirect,
        edits: &mut Edits<'a>,
        tracer: &mut T,
    ) -> Decision<'a> {
        let location = self.location(cx, redirect);
        let status = redirect.status_code.unwrap_or(302);
        tracer.note(|| format!("RequestRedirect: {status} to {location}"));
        Decision {
            listener: Some(&cx.listener.name),
            route: Some(cx.identity),
            action: Action::Redirect(Redirect {
                status,
                location,
                response_headers: std::mem::take(&mut edits.response),
            }),
        }
    }

    /// RequestMirror: a copy to the mirror's upstream, sampled at `numerator / denominator`.
    fn mirror<'a, T: Tracer>(
        &'a self,
        backend: u32,
        (numerator, denominator): (u32, u32),
        edits: &mut Edits<'a>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) {
        let Some(target) = self.backends.get(backend as usize) else {
            return;
        };
        let sampled = numerator >= denominator
            || (numerator > 0
                && below(random.next_u64(), u64::from(denominator)) < u64::from(numerator));
        match (target.upstream(), sampled) {
            (Some(upstream), true) => {
                edits.mirrors.push(Mirror {
                    backend: &target.key,
                    upstream,
                });
                tracer.note(|| format!("RequestMirror: copy to {}", target.key));
            }
            (None, _) => {
                tracer.note(|| format!("RequestMirror: {} is invalid, not mirrored", target.key))
            }
            (_, false) => {
                tracer.note(|| format!("RequestMirror: {} not sampled this time", target.key))
            }
        }
    }

    /// CORS: answers a preflight itself; otherwise adds the response headers for an allowed origin.
    fn cors<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        cors: &'a CompiledCors,
        edits: &mut Edits<'a>,
        tracer: &mut T,
    ) -> ControlFlow<Decision<'a>> {
        let Some(origin) = cx.request.header("origin") else {
            return ControlFlow::Continue(());
        };
        let requested_method = cx.request.header("access-control-request-method");
        if cx.request.method == "OPTIONS" && requested_method.is_some() {
            let headers = cors.preflight_headers(
                origin,
                requested_method,
                cx.request.header("access-control-request-headers"),
            );
            tracer.note(|| {
                format!(
                    "CORS: preflight from {origin:?} answered ({} allowed)",
                    if headers.is_empty() { "not" } else { "origin" }
                )
            });
            return ControlFlow::Break(Decision {
                listener: Some(&cx.listener.name),
                route: Some(cx.identity),
                action: Action::Respond(LocalResponse {
                    status: 200,
                    reason: LocalReason::CorsPreflight,
                    headers,
                    grpc: None,
                }),
            });
        }
        cors.response_headers(origin, &mut edits.response);
        tracer.note(|| {
            let verdict = if cors.allows(origin) {
                "allowed"
            } else {
                "not allowed"
            };
            format!("CORS: origin {origin:?} {verdict}")
        });
        ControlFlow::Continue(())
    }

    /// Applies a path modifier to the request path, keeping the query.
    fn modified_path<H: AsRef<str>>(
        &self,
        cx: &Context<'_, '_, H>,
        modifier: &PathModifier,
    ) -> String {
        let (path, query) = split_query(cx.request.path);
        let mut out = match modifier {
            PathModifier::ReplaceFullPath { replace_full_path } => replace_full_path.clone(),
            PathModifier::ReplacePrefixMatch {
                replace_prefix_match,
            } => {
                let matched = match cx.matched_path {
                    Some(p) if p.kind == PathMatchType::PathPrefix => p.value.trim_end_matches('/'),
                    _ => "",
                };
                let rest = path.get(matched.len()..).unwrap_or("");
                let mut out = replace_prefix_match.trim_end_matches('/').to_owned();
                out.push_str(rest);
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
        };
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    /// The `Location` of a redirect, following the spec's scheme and port rules.
    fn location<H: AsRef<str>>(
        &self,
        cx: &Context<'_, '_, H>,
        redirect: &RequestRedirect,
    ) -> String {
        let scheme = redirect
            .scheme
            .as_deref()
            .unwrap_or(cx.listener.protocol.scheme());
        let host = redirect.hostname.as_deref().unwrap_or(cx.host);
        // "If no port is specified, the redirect port MUST be derived using the following rules:
        // if redirect scheme is not-empty, the redirect port MUST be the well-known port associated
        // with the redirect scheme [...]. If redirect scheme is empty, the redirect port MUST be the
        // Gateway Listener port."
        let port = match (redirect.port, redirect.scheme.as_deref()) {
            (Some(port), _) => port,
            (None, Some("https")) => 443,
            (None, Some(_)) => 80,
            (None, None) => cx.listener.port,
        };
        let path = match &redirect.path {
            Some(modifier) => self.modified_path(cx, modifier),
            None => cx.request.path.to_owned(),
        };
        // "Implementations SHOULD NOT add the port number in the 'Location' header" for http:80
        // and https:443.
        let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
        if default_port {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}:{port}{path}")
        }
    }
}

/// The changes the filters of a rule and of the picked backendRef gather for a forward.
#[derive(Default)]
pub(crate) struct Edits<'a> {
    pub(crate) request: Vec<HeaderEdit<'a>>,
    pub(crate) response: Vec<HeaderEdit<'a>>,
    pub(crate) path: Option<String>,
    pub(crate) authority: Option<&'a str>,
    pub(crate) mirrors: Vec<Mirror<'a>>,
}

fn push_edits<'a>(m: &'a HeaderModifier, out: &mut Vec<HeaderEdit<'a>>) {
    out.reserve(m.set.len() + m.add.len() + m.remove.len());
    out.extend(
        m.set
            .iter()
            .map(|h| HeaderEdit::Set(&h.name, Cow::Borrowed(h.value.as_str()))),
    );
    out.extend(
        m.add
            .iter()
            .map(|h| HeaderEdit::Add(&h.name, Cow::Borrowed(h.value.as_str()))),
    );
    out.extend(m.remove.iter().map(|n| HeaderEdit::Remove(n)));
}

fn describe_modifier(m: &HeaderModifier) -> String {
    let mut parts = Vec::new();
    parts.extend(
        m.set
            .iter()
            .map(|h| format!("set {}={:?}", h.name, h.value)),
    );
    parts.extend(
        m.add
            .iter()
            .map(|h| format!("add {}={:?}", h.name, h.value)),
    );
    parts.extend(m.remove.iter().map(|n| format!("remove {n}")));
    parts.join(", ")
}
