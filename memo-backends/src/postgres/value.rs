//! How values go into and come out of the `jsonb` column.

use std::error::Error;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::{to_sql_checked, IsNull, Json, ToSql, Type};

/// A value encoded as JSON text, sent as `jsonb` (binary format: version 1, then the text).
#[derive(Debug)]
pub(crate) struct Jsonb(Vec<u8>);

impl Jsonb {
    /// Encodes `value` (serde_json).
    pub(crate) fn encode<V: Serialize>(value: &V) -> Result<Jsonb, String> {
        serde_json::to_vec(value).map(Jsonb).map_err(|e| e.to_string())
    }
}

impl ToSql for Jsonb {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON)
    }

    to_sql_checked!();
}

/// Column `index` of `row` decoded as a `V`; a value that does not decode (a changed
/// type, a hand-edited row) is an error, which the store counts as a miss.
pub(crate) fn decode<V: DeserializeOwned>(row: &tokio_postgres::Row, index: usize) -> Result<V, String> {
    row.try_get::<_, Json<V>>(index).map(|Json(v)| v).map_err(|e| match e.source() {
        Some(reason) => reason.to_string(),
        None => e.to_string(),
    })
}
