//! The table layout and every statement of the postgres backend, with the configured
//! schema written in.
//!
//! ```text
//! {schema}.memo_entries          one row per entry
//!   namespace  text         {key prefix}:{function prefix or _}:postgres:{function path}:{fingerprint}
//!   key        text         the arguments: hex of the encoded tuple, or name=hex:name=hex (strict)
//!   value      jsonb        the value, as serde_json writes it
//!   tags       text[]       the entry's rendered tags
//!   written_at timestamptz  when it was written (or touched): `limit` evicts the oldest first
//!   expires_at timestamptz  past it the row is never served (NULL: never); the cleanup deletes it
//!   primary key (namespace, key); indexes on (namespace, written_at), on expires_at, GIN on tags
//! {schema}.memo_generations      one row per function that ever stored or cleared
//!   namespace text primary key, generation bigint: moved on by every clear,
//!   entries bigint: the function's rows, so that `limit` evicts without counting them
//! {schema}.memo_tag_versions     one row per tag ever written or invalidated
//!   tag text primary key, version bigint: moved on by every invalidation of the tag
//! {schema}.memo_leases           one row per key a process computes (`single_flight = "global"`)
//!   namespace text, key text, token text: whose lease it is,
//!   expires_at timestamptz: past it (by the database's clock) another process takes it over
//!   primary key (namespace, key); index on expires_at (the cleanup deletes expired leases)
//! {schema}.memo_bus              one row per invalidation channel (`local = N`: see the module `bus`)
//!   channel text primary key, sequence bigint: the number of the channel's last message
//! ```
//!
//! A fill stores only if the generation of its function, and the versions of its tags,
//! are those its lookup saw: [`WRITE`]'s function checks them under a per-function
//! advisory lock that every clear of the function takes too, so that no clear can
//! slip between the check and the insert (clear versus fill), and evicts past `limit`
//! in the same transaction (no check-then-act between processes). Tag invalidations
//! lock the tags' version rows, which a fill holds `FOR SHARE` while it writes.
//!
//! Under `single_flight = "global"`, the leader of a miss takes the key's lease
//! ([`LEASE`](Sql::lease): an upsert that succeeds only when the lease is absent or
//! expired, which reads the generation and tag versions again in the same call, so the
//! write is fenced from the moment the computation may start). `memo_write` then stores
//! only while the lease row still carries the write's token, and deletes it, stored or
//! not. A lease row is only ever locked alone (by its upsert, the release, the cleanup),
//! or by `memo_write` after the function's advisory lock: the lock order is unchanged.

/// The first key of the advisory locks this backend takes (`'memo'` in ASCII); the
/// second is `hashtext(namespace)`.
pub(crate) const LOCK_CLASS: i32 = 0x6d65_6d6f;

/// Rows the cleanup deletes per statement.
pub(crate) const CLEANUP_BATCH: i64 = 1000;

/// The statements, with the schema written in.
#[derive(Debug)]
pub(crate) struct Sql {
    /// Creates the schema, tables, indexes and functions if missing.
    pub(crate) setup: String,
    /// `$1` namespace, `$2` key: the live value.
    pub(crate) get: String,
    /// [`get`](Sql::get), and the value's age by the database's clock (ms).
    pub(crate) get_stamped: String,
    /// `$1` namespace, `$2` keys: the live ones' key, value and age (ms).
    pub(crate) get_many: String,
    /// `$1` namespace, `$2` tags: the clear generation and the tags' versions.
    pub(crate) ticket: String,
    /// `$1` namespace, `$2` key, `$3` value, `$4` tags, `$5` generation, `$6` versions,
    /// `$7` retention ms (0: none), `$8` limit (0: none), `$9` lease token (NULL: none):
    /// the rows evicted, or -1 when a clear or an invalidation happened since the lookup,
    /// or the lease is no longer the token's (then nothing is stored). The token's lease
    /// is released, stored or not.
    pub(crate) write: String,
    /// `$1` namespace, `$2` key, `$3` a new lease token, `$4` the lease in ms, `$5` look
    /// for the value first, `$6` the entry's tags: one row (state, value, age ms,
    /// generation, versions, ms left). State 1: the live value was there (and looked
    /// for); 2: the lease was absent or expired and is now the token's, with the
    /// generation and versions read after taking it; 3: another holds it, for ms left.
    pub(crate) lease: String,
    /// `$1` namespace, `$2` key, `$3` token: deletes the lease if it is still the token's.
    pub(crate) release: String,
    /// Deletes up to [`CLEANUP_BATCH`] expired leases; the rows deleted.
    pub(crate) cleanup_leases: String,
    /// `$1` namespace, `$2` wanted segments (NULL: all), `$3` key (NULL: all): the live
    /// rows removed, after moving the generation on.
    pub(crate) clear: String,
    /// `$1` namespace: moves the generation on.
    pub(crate) bump: String,
    /// `$1` tags: moves their versions on and deletes their rows; the live rows removed.
    pub(crate) invalidate_tags: String,
    /// `$1` namespace, `$2` key, `$3` lifetime ms (0: none): the ms left to a live row
    /// (NULL for no expiry); no row when it is not live.
    pub(crate) ttl: String,
    /// `$1` namespace, `$2` key, `$3` retention ms (0: none), `$4` lifetime ms (0:
    /// none): restarts a live row's life; the rows touched.
    pub(crate) touch: String,
    /// `$1` namespace: the live rows.
    pub(crate) len: String,
    /// `$1` key prefix followed by `:`: deletes every row under it.
    pub(crate) sweep: String,
    /// Deletes up to [`CLEANUP_BATCH`] expired rows.
    pub(crate) cleanup: String,
    /// `$1` channel, `$2` message: numbers the message and sends it (`NOTIFY`).
    pub(crate) notify: String,
    /// `$1` channel: the number of its last message (0: none yet).
    pub(crate) last_message: String,
}

/// A row that may be served.
const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        // The schema is a checked identifier (`[a-z_][a-z0-9_]*`): quoting is enough.
        let s = format!("\"{schema}\"");
        Sql {
            setup: setup(&s),
            get: format!("SELECT value FROM {s}.memo_entries WHERE namespace = $1 AND key = $2 AND {LIVE}"),
            get_stamped: format!(
                "SELECT value, (extract(epoch FROM now() - written_at) * 1000)::int8 FROM {s}.memo_entries \
                 WHERE namespace = $1 AND key = $2 AND {LIVE}"
            ),
            get_many: format!(
                "SELECT key, value, (extract(epoch FROM now() - written_at) * 1000)::int8 FROM {s}.memo_entries \
                 WHERE namespace = $1 AND key = ANY($2) AND {LIVE}"
            ),
            ticket: format!(
                "SELECT coalesce((SELECT generation FROM {s}.memo_generations WHERE namespace = $1), 0), \
                 coalesce((SELECT array_agg(coalesce(v.version, 0) ORDER BY t.i) \
                 FROM unnest($2::text[]) WITH ORDINALITY AS t(tag, i) \
                 LEFT JOIN {s}.memo_tag_versions v ON v.tag = t.tag), '{{}}'::int8[])"
            ),
            write: format!("SELECT {s}.memo_write($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            lease: format!("SELECT * FROM {s}.memo_lease($1, $2, $3, $4, $5, $6)"),
            release: format!("DELETE FROM {s}.memo_leases WHERE namespace = $1 AND key = $2 AND token = $3"),
            cleanup_leases: format!(
                "DELETE FROM {s}.memo_leases WHERE ctid = ANY(ARRAY(\
                 SELECT ctid FROM {s}.memo_leases WHERE expires_at <= clock_timestamp() LIMIT {CLEANUP_BATCH})) \
                 AND expires_at <= clock_timestamp()"
            ),
            clear: format!("SELECT {s}.memo_clear($1, $2, $3)"),
            // No key is `:` (strict keys start with a name, others are hex).
            bump: format!("SELECT {s}.memo_clear($1, NULL, ':')"),
            invalidate_tags: format!("SELECT {s}.memo_invalidate_tags($1)"),
            ttl: format!(
                "SELECT (extract(epoch FROM expires_at - now()) * 1000)::int8 FROM {s}.memo_entries \
                 WHERE namespace = $1 AND key = $2 AND {LIVE} \
                 AND ($3::int8 = 0 OR written_at + $3::int8 * interval '1 millisecond' > now())"
            ),
            touch: format!(
                "UPDATE {s}.memo_entries SET written_at = clock_timestamp(), \
                 expires_at = CASE WHEN $3::int8 > 0 THEN clock_timestamp() + $3::int8 * interval '1 millisecond' END \
                 WHERE namespace = $1 AND key = $2 AND {LIVE} \
                 AND ($4::int8 = 0 OR written_at + $4::int8 * interval '1 millisecond' > now())"
            ),
            len: format!("SELECT count(*) FROM {s}.memo_entries WHERE namespace = $1 AND {LIVE}"),
            sweep: format!("SELECT {s}.memo_sweep($1)"),
            cleanup: format!("SELECT {s}.memo_cleanup({CLEANUP_BATCH})"),
            notify: format!("SELECT {s}.memo_notify($1, $2)"),
            last_message: format!(
                "SELECT coalesce((SELECT sequence FROM {s}.memo_bus WHERE channel = $1), 0)"
            ),
        }
    }
}

/// The common table expressions that take the rows of `gone` (a `DELETE …
/// RETURNING namespace` across functions) off their functions' counts.
fn forget(s: &str) -> String {
    format!(
        "counts AS (SELECT namespace, count(*) AS n FROM gone GROUP BY namespace), \
         forgotten AS (UPDATE {s}.memo_generations g SET entries = greatest(g.entries - counts.n, 0) \
         FROM counts WHERE g.namespace = counts.namespace)"
    )
}

/// The tables and functions, created if missing by the first process to use them
/// (under an advisory lock, so that two processes starting together do not collide).
fn setup(s: &str) -> String {
    let forget = forget(s);
    format!(
        r"
SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0);
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.memo_entries (
    namespace  text        NOT NULL,
    key        text        NOT NULL,
    value      jsonb       NOT NULL,
    tags       text[]      NOT NULL DEFAULT '{{}}',
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS memo_entries_age ON {s}.memo_entries (namespace, written_at);
CREATE INDEX IF NOT EXISTS memo_entries_expiry ON {s}.memo_entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS memo_entries_tags ON {s}.memo_entries USING gin (tags);
CREATE TABLE IF NOT EXISTS {s}.memo_generations (
    namespace  text   PRIMARY KEY,
    generation bigint NOT NULL,
    entries    bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {s}.memo_tag_versions (
    tag     text   PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.memo_leases (
    namespace  text        NOT NULL,
    key        text        NOT NULL,
    token      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS memo_leases_expiry ON {s}.memo_leases (expires_at);

CREATE OR REPLACE FUNCTION {s}.memo_write(
    p_ns text, p_key text, p_value jsonb, p_tags text[], p_generation bigint, p_versions bigint[],
    p_retention_ms bigint, p_limit bigint, p_token text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    evicted bigint := 0;
    inserted boolean;
    stored bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(p_ns));
    -- The write's lease goes, whatever follows; a lease taken over (or deleted by the
    -- cleanup once expired) is no longer the write's: nothing is stored.
    IF p_token IS NOT NULL THEN
        DELETE FROM {s}.memo_leases WHERE namespace = p_ns AND key = p_key AND token = p_token;
        IF NOT FOUND THEN
            RETURN -1;
        END IF;
    END IF;
    IF coalesce((SELECT generation FROM {s}.memo_generations WHERE namespace = p_ns), 0) <> p_generation THEN
        RETURN -1;
    END IF;
    IF cardinality(p_tags) > 0 THEN
        INSERT INTO {s}.memo_tag_versions (tag, version)
            SELECT DISTINCT t, 0 FROM unnest(p_tags) AS t ORDER BY 1 ON CONFLICT (tag) DO NOTHING;
        PERFORM 1 FROM {s}.memo_tag_versions WHERE tag = ANY(p_tags) ORDER BY tag FOR SHARE;
        IF EXISTS (SELECT 1 FROM unnest(p_tags, p_versions) AS t(tag, seen)
                   JOIN {s}.memo_tag_versions v ON v.tag = t.tag WHERE v.version <> t.seen) THEN
            RETURN -1;
        END IF;
    END IF;
    INSERT INTO {s}.memo_entries (namespace, key, value, tags, written_at, expires_at)
    VALUES (p_ns, p_key, p_value, p_tags, clock_timestamp(),
            CASE WHEN p_retention_ms > 0 THEN clock_timestamp() + p_retention_ms * interval '1 millisecond' END)
    ON CONFLICT (namespace, key) DO UPDATE
        SET value = EXCLUDED.value, tags = EXCLUDED.tags,
            written_at = EXCLUDED.written_at, expires_at = EXCLUDED.expires_at
    RETURNING (xmax = 0) INTO inserted;
    IF NOT inserted THEN
        RETURN 0;
    END IF;
    INSERT INTO {s}.memo_generations AS g (namespace, generation, entries) VALUES (p_ns, 0, 1)
        ON CONFLICT (namespace) DO UPDATE SET entries = g.entries + 1
        RETURNING entries INTO stored;
    IF p_limit > 0 AND stored > p_limit THEN
        DELETE FROM {s}.memo_entries WHERE namespace = p_ns AND key IN (
            SELECT key FROM {s}.memo_entries WHERE namespace = p_ns
            ORDER BY written_at, key LIMIT stored - p_limit);
        GET DIAGNOSTICS evicted = ROW_COUNT;
        IF evicted < stored - p_limit THEN
            -- The count had drifted (rows deleted by hand): count again.
            UPDATE {s}.memo_generations SET entries = (
                SELECT count(*) FROM {s}.memo_entries WHERE namespace = p_ns) WHERE namespace = p_ns;
        ELSE
            UPDATE {s}.memo_generations SET entries = entries - evicted WHERE namespace = p_ns;
        END IF;
    END IF;
    RETURN evicted;
END
$$;

-- The lease of (p_ns, p_key) for p_token, unless another holds it; see `Sql::lease`.
CREATE OR REPLACE FUNCTION {s}.memo_lease(
    p_ns text, p_key text, p_token text, p_lease_ms bigint, p_look boolean, p_tags text[],
    OUT o_state int, OUT o_value jsonb, OUT o_age bigint, OUT o_generation bigint,
    OUT o_versions bigint[], OUT o_left_ms bigint
) LANGUAGE plpgsql AS $$
BEGIN
    IF p_look THEN
        SELECT e.value, (extract(epoch FROM now() - e.written_at) * 1000)::int8 INTO o_value, o_age
            FROM {s}.memo_entries e
            WHERE e.namespace = p_ns AND e.key = p_key AND (e.expires_at IS NULL OR e.expires_at > now());
        IF FOUND THEN
            o_state := 1;
            RETURN;
        END IF;
    END IF;
    INSERT INTO {s}.memo_leases AS l (namespace, key, token, expires_at)
        VALUES (p_ns, p_key, p_token, clock_timestamp() + p_lease_ms * interval '1 millisecond')
        ON CONFLICT (namespace, key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE l.expires_at <= clock_timestamp();
    IF FOUND THEN
        -- Read after the lease is taken: a clear or an invalidation from here on
        -- refuses the write.
        o_state := 2;
        o_generation := coalesce((SELECT g.generation FROM {s}.memo_generations g WHERE g.namespace = p_ns), 0);
        o_versions := coalesce((SELECT array_agg(coalesce(v.version, 0) ORDER BY t.i)
            FROM unnest(p_tags) WITH ORDINALITY AS t(tag, i)
            LEFT JOIN {s}.memo_tag_versions v ON v.tag = t.tag), '{{}}'::int8[]);
        RETURN;
    END IF;
    o_state := 3;
    o_left_ms := coalesce((SELECT greatest(ceil(extract(epoch FROM l.expires_at - clock_timestamp()) * 1000), 0)::int8
        FROM {s}.memo_leases l WHERE l.namespace = p_ns AND l.key = p_key), 0);
END
$$;

CREATE OR REPLACE FUNCTION {s}.memo_clear(p_ns text, p_wanted text[], p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
    deleted bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(p_ns));
    INSERT INTO {s}.memo_generations AS g (namespace, generation) VALUES (p_ns, 1)
        ON CONFLICT (namespace) DO UPDATE SET generation = g.generation + 1;
    WITH gone AS (
        DELETE FROM {s}.memo_entries
        WHERE namespace = p_ns
          AND (p_key IS NULL OR key = p_key)
          AND (p_wanted IS NULL OR string_to_array(key, ':') @> p_wanted)
        RETURNING expires_at
    )
    SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now()), count(*)
        INTO removed, deleted FROM gone;
    -- A full clear also corrects a count that rows deleted by hand made drift.
    UPDATE {s}.memo_generations
        SET entries = CASE WHEN p_wanted IS NULL AND p_key IS NULL THEN 0 ELSE greatest(entries - deleted, 0) END
        WHERE namespace = p_ns;
    RETURN removed;
END
$$;

CREATE OR REPLACE FUNCTION {s}.memo_invalidate_tags(p_tags text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
    ns text;
BEGIN
    -- The functions' locks first, in one order, as clears and writes take theirs before
    -- any row: no cycle with a write evicting rows of the same function.
    FOR ns IN SELECT DISTINCT namespace FROM {s}.memo_entries WHERE tags && p_tags ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(ns));
    END LOOP;
    INSERT INTO {s}.memo_tag_versions AS v (tag, version)
        SELECT DISTINCT t, 1 FROM unnest(p_tags) AS t ORDER BY 1
        ON CONFLICT (tag) DO UPDATE SET version = v.version + 1;
    WITH gone AS (
        DELETE FROM {s}.memo_entries WHERE tags && p_tags RETURNING namespace, expires_at
    ), {forget}
    SELECT count(*) INTO removed FROM gone WHERE expires_at IS NULL OR expires_at > now();
    RETURN removed;
END
$$;

-- One batch of the cleanup: the expired rows of up to p_batch, under their functions'
-- locks (taken in one order first), rechecked as they are deleted (a row rewritten
-- meanwhile is not expired any more).
CREATE OR REPLACE FUNCTION {s}.memo_cleanup(p_batch int)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
    ns text;
    locked text[] := '{{}}';
BEGIN
    FOR ns IN SELECT DISTINCT b.namespace FROM (
        SELECT namespace FROM {s}.memo_entries WHERE expires_at <= now() LIMIT p_batch) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(ns));
        locked := locked || ns;
    END LOOP;
    WITH gone AS (
        DELETE FROM {s}.memo_entries WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM {s}.memo_entries
            WHERE expires_at <= now() AND namespace = ANY(locked) LIMIT p_batch))
          AND expires_at <= now()
        RETURNING namespace
    ), {forget}
    SELECT count(*) INTO removed FROM gone;
    RETURN removed;
END
$$;

-- flush_all: every function under the prefix cleared as a clear does (its generation
-- moves on, so no fill that began before stores), then any row left.
CREATE OR REPLACE FUNCTION {s}.memo_sweep(p_prefix text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    ns text;
    removed bigint := 0;
BEGIN
    FOR ns IN SELECT namespace FROM {s}.memo_generations WHERE starts_with(namespace, p_prefix) ORDER BY 1 LOOP
        removed := removed + {s}.memo_clear(ns, NULL, NULL);
    END LOOP;
    DELETE FROM {s}.memo_entries WHERE starts_with(namespace, p_prefix);
    RETURN removed;
END
$$;

-- The invalidation bus of `local = N`: a message is numbered by its channel's row,
-- whose lock is held until the commit that sends it, so that the numbers reach the
-- listeners in order (a NOTIFY is queued at commit, under that lock).
CREATE TABLE IF NOT EXISTS {s}.memo_bus (
    channel  text   PRIMARY KEY,
    sequence bigint NOT NULL
);

CREATE OR REPLACE FUNCTION {s}.memo_notify(p_channel text, p_message text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO {s}.memo_bus AS b (channel, sequence) VALUES (p_channel, 1)
        ON CONFLICT (channel) DO UPDATE SET sequence = b.sequence + 1
        RETURNING b.sequence INTO n;
    PERFORM pg_notify(p_channel, n::text || '#' || p_message);
    RETURN n;
END
$$;
"
    )
}
