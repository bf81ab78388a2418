//! The `kinds!` macro: turns the table of kinds (in `kinds.rs`) into [`Kind`](super::Kind),
//! [`Object`](super::Object), [`Snapshot`](super::Snapshot) and the [`KindType`](super::KindType)
//! implementations. Only the per-row parts are generated here; everything that can be written once
//! for every kind is plain code in `kinds.rs`, through [`Kind::visit`](super::Kind::visit).

macro_rules! kinds {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($ty:ty) {
            kind: $kind:literal,
            snapshot: $field:ident,
            status: $status:expr,
            manifest_aliases: [$(($alias_group:expr, $alias_kind:literal)),* $(,)?],
            watch_fields: $watch_fields:expr $(,)?
        }
    ),+ $(,)?) => {
        /// One kind of object the shim reads (a row of the table in `kinds.rs`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($(#[doc = $doc])* $variant,)+
        }

        impl Kind {
            /// How many kinds the table has.
            pub const COUNT: usize = [$($kind),+].len();
            /// Every kind, in table order.
            pub const ALL: [Kind; Kind::COUNT] = [$(Kind::$variant),+];

            /// The `kind` field of the objects.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $kind,)+
                }
            }

            /// Whether and how the shim writes this kind's status.
            pub fn status(self) -> StatusWrite {
                match self {
                    $(Kind::$variant => $status,)+
                }
            }

            /// The field selector the Kubernetes watcher lists this kind with (None: every object).
            pub fn watch_field_selector(self) -> Option<&'static str> {
                match self {
                    $(Kind::$variant => $watch_fields,)+
                }
            }

            /// Other `(apiVersion group, kind)` spellings a manifest may use for this kind.
            pub fn manifest_aliases(self) -> &'static [(&'static str, &'static str)] {
                match self {
                    $(Kind::$variant => &[$(($alias_group, $alias_kind)),*],)+
                }
            }

            /// Runs `visitor` with this kind's Rust type.
            pub fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(Kind::$variant => visitor.visit::<$ty>(),)+
                }
            }
        }

        /// One object of a kind the shim reads.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Object {
            $($variant($ty),)+
        }

        impl Object {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)+
                }
            }

            pub fn metadata(&self) -> &$crate::api::ObjectMeta {
                match self {
                    $(Object::$variant(o) => &o.metadata,)+
                }
            }

            pub fn metadata_mut(&mut self) -> &mut $crate::api::ObjectMeta {
                match self {
                    $(Object::$variant(o) => &mut o.metadata,)+
                }
            }

            /// The object as JSON (`status` included).
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self {
                    $(Object::$variant(o) => serde_json::to_value(o),)+
                };
                value.unwrap_or(serde_json::Value::Null)
            }
        }

        /// The resolver's input: every object it may look at, as one consistent snapshot, one list
        /// per kind. Order inside each list does not matter.
        #[derive(Debug, Clone, Default)]
        pub struct Snapshot {
            $($(#[doc = $doc])* pub $field: Vec<$ty>,)+
        }

        impl Snapshot {
            /// Adds an object to the list of its kind.
            pub fn push(&mut self, object: Object) {
                match object {
                    $(Object::$variant(o) => self.$field.push(o),)+
                }
            }
        }

        $(
            impl KindType for $ty {
                const KIND: Kind = Kind::$variant;

                fn into_object(self) -> Object {
                    Object::$variant(self)
                }

                fn list(snapshot: &Snapshot) -> &[Self] {
                    &snapshot.$field
                }
            }
        )+
    };
}
