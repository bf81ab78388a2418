//! One filter instance: the module instantiated in wasmi with the emulated host, started the way
//! ngx_wasm_module starts a filter's root context (src/common/proxy_wasm/ngx_proxy_wasm.c,
//! `ngx_proxy_wasm_run_step` on a new root: `proxy_on_context_create(root, 0)`,
//! `proxy_on_vm_start`, then `proxy_on_configure` with the configuration's length; a false return
//! or a trap fails the start) and called for each request step.

use wasmi::{Engine, Instance, Linker, Module, Store, Val};

use crate::abi::HostState;
use crate::stream::Stream;
use crate::version::KongVersion;

/// The root context id ngx_wasm_module gives a filter.
pub const ROOT_CONTEXT: i32 = 1;

pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    next_context: i32,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("next_context", &self.next_context)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Instantiates the module and runs its root context's start with `config`. The error says
    /// which step failed, and carries what the filter logged.
    pub fn start(
        engine: &Engine,
        module: &Module,
        linker: &Linker<HostState>,
        version: KongVersion,
        config: Vec<u8>,
    ) -> Result<Vm, String> {
        let size = i32::try_from(config.len()).map_err(|_| "configuration too large".to_owned())?;
        let mut store = Store::new(engine, HostState::new(version, config));
        let instance = linker
            .instantiate_and_start(&mut store, module)
            .map_err(|e| format!("instantiating the module: {e}"))?;
        let mut vm = Vm {
            store,
            instance,
            next_context: ROOT_CONTEXT + 1,
        };
        if vm.instance.get_func(&vm.store, "_initialize").is_some() {
            vm.call("_initialize", &[])?;
        }
        vm.call("proxy_on_context_create", &[ROOT_CONTEXT, 0])?;
        if vm.call("proxy_on_vm_start", &[ROOT_CONTEXT, 0])? == Some(0) {
            return Err(vm.failure("on_vm_start returned false"));
        }
        if vm.call("proxy_on_configure", &[ROOT_CONTEXT, size])? == Some(0) {
            return Err(vm.failure("on_configure returned false"));
        }
        Ok(vm)
    }

    fn failure(&self, what: &str) -> String {
        format!("{what} (filter log: {})", self.logs().join(" | "))
    }

    /// Calls an export with i32 arguments; its i32 result, if it has one. A trap is an error
    /// naming the export.
    pub fn call(&mut self, name: &str, args: &[i32]) -> Result<Option<i32>, String> {
        let func = self
            .instance
            .get_func(&self.store, name)
            .ok_or_else(|| format!("the module does not export {name}"))?;
        let results = func.ty(&self.store).results().len();
        let inputs: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut outputs = vec![Val::I32(0); results];
        func.call(&mut self.store, &inputs, &mut outputs)
            .map_err(|e| format!("{name} trapped: {e}"))?;
        Ok(outputs.first().and_then(Val::i32))
    }

    /// A fresh HTTP context id, created in the filter.
    pub fn new_context(&mut self) -> Result<i32, String> {
        let id = self.next_context;
        self.next_context += 1;
        self.call("proxy_on_context_create", &[id, ROOT_CONTEXT])?;
        Ok(id)
    }

    pub fn set_stream(&mut self, stream: Option<Stream>) {
        self.store.data_mut().stream = stream;
    }

    pub fn take_stream(&mut self) -> Option<Stream> {
        self.store.data_mut().stream.take()
    }

    /// What the filter logged, oldest first.
    pub fn logs(&self) -> &[String] {
        &self.store.data().logs
    }

    /// A metric's value by the name the filter defined (without ngx_wasm_module's prefix).
    pub fn metric(&self, name: &str) -> Option<u64> {
        let full = format!("pw.gateway_wasm.{name}");
        self.store
            .data()
            .metrics
            .iter()
            .find(|(n, _)| *n == full)
            .map(|(_, v)| *v)
    }
}
