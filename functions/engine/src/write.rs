//! The one way the engine writes an alias: guarded by the revision just read, and honest about a write that
//! landed although its answer did not.

use safeshift_core::Error;
use safeshift_core::alias::{AliasState, AliasUpdate};

use crate::ports::{ReadAlias, WriteAlias};

/// Writes `update`, guarded by `revision_id`. A precondition failure (`AliasConflict`) is read again: when the
/// SDK retried a write that had landed (its answer lost to a timeout), the retry finds the revision the write
/// itself produced, and the alias already routes as asked — that is success, not someone else's change.
pub async fn update_alias<A: ReadAlias + WriteAlias>(
    aliases: &A,
    function: &str,
    alias: &str,
    update: &AliasUpdate,
    revision_id: &str,
) -> Result<AliasState, Error> {
    match aliases
        .update_alias(function, alias, update, revision_id)
        .await
    {
        Err(conflict @ Error::AliasConflict { .. }) => {
            let now = aliases.get_alias(function, alias).await?;
            if now.shows(update) {
                tracing::info!(
                    revision = %now.revision_id,
                    "the write had landed before its retry: the alias already routes as asked"
                );
                Ok(now)
            } else {
                Err(conflict)
            }
        }
        other => other,
    }
}
