//! A host wrapper that counts calls for `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use quire_engine::{CallContext, Host, HostCall, HostReply};

use crate::metrics::Metrics;

/// Forwards every call to the wrapped host, counting it.
pub(crate) struct CountingHost {
    inner: Arc<dyn Host>,
    metrics: Arc<Metrics>,
}

impl CountingHost {
    pub(crate) fn wrap(inner: Arc<dyn Host>, metrics: Arc<Metrics>) -> Arc<dyn Host> {
        Arc::new(Self { inner, metrics })
    }
}

impl Host for CountingHost {
    fn module_source(&self) -> &'static str {
        self.inner.module_source()
    }

    fn call(&self, cx: &CallContext, call: HostCall, reply: HostReply) {
        self.metrics.host_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.call(cx, call, reply);
    }
}
