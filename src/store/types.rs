//! Typed columns: identifiers that cannot be swapped for one another, enums stored as fixed text, and
//! 0/1 flags. Each domain module declares its own with the macros here; the store maps them to the
//! portable column types (TEXT, BIGINT) on both backends.

use sqlx::any::{Any, AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Decode, Encode, Type};

/// Declares a random 128-bit identifier stored as 32 lower-case hex digits: `random()` makes one,
/// `parse()` admits one from outside (a URL path), and it is encoded and decoded as a TEXT column.
#[macro_export]
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh identifier from the operating system's CSPRNG.
            pub fn random() -> Self {
                Self($crate::crypto::random_id())
            }

            /// An identifier typed by someone else: 32 hex digits, or `None`.
            pub fn parse(text: &str) -> Option<Self> {
                $crate::store::types::is_id(text).then(|| Self(text.to_ascii_lowercase()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        $crate::text_column!($name, |value: &$name| value.0.as_str(), |text: String| Some($name(text)));
    };
}

/// Declares an enum stored as fixed text: `as_str()`, `parse()`, `Display`, serde as the same text, and
/// the column encoding. A stored value the enum does not know is a decoding error, never a guess.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    let expected: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!(
                        "unknown value `{text}`, expected one of: {}",
                        expected.join(", ")
                    ))
                })
            }
        }

        $crate::text_column!($name, |value: &$name| value.as_str(), |text: String| $name::parse(&text));
    };
}

/// The TEXT column encoding of a type, from a way to show it and a way to read it back.
#[macro_export]
macro_rules! text_column {
    ($name:ty, $show:expr, $read:expr) => {
        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let show: fn(&$name) -> &str = $show;
                <String as sqlx::Encode<'q, sqlx::Any>>::encode(show(self).to_string(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                let read: fn(String) -> Option<$name> = $read;
                read(text).ok_or_else(|| {
                    format!("a stored value is not a valid {}", stringify!($name)).into()
                })
            }
        }
    };
}

/// Whether `text` is an identifier as `crypto::random_id` makes them: 32 hex digits.
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A 0/1 BIGINT column as a bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Any> for Flag {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Any>>::encode(i64::from(self.0), buf)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<i64 as Decode<'r, Any>>::decode(value)? != 0))
    }
}

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

#[cfg(test)]
mod tests {
    crate::id_type!(
        /// For the tests.
        ExampleId
    );

    crate::text_enum! {
        /// For the tests.
        pub enum Colour { Red = "red", Green = "green" }
    }

    #[test]
    fn ids_parse_only_their_own_shape() {
        let id = ExampleId::random();
        assert_eq!(ExampleId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(
            ExampleId::parse(&id.as_str().to_ascii_uppercase()),
            Some(id)
        );
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            &"g".repeat(32),
            &"a".repeat(33),
        ] {
            assert_eq!(ExampleId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn text_enums_round_trip_and_refuse_strangers() {
        for colour in Colour::ALL {
            assert_eq!(Colour::parse(colour.as_str()), Some(*colour));
            let json = serde_json::to_string(colour).unwrap();
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), *colour);
        }
        assert_eq!(Colour::parse("blue"), None);
        let err = serde_json::from_str::<Colour>("\"blue\"").unwrap_err();
        assert!(err.to_string().contains("red, green"), "{err}");
    }
}
