-- Approvals: people in the loop of destructive writes.  A write tool may need an approver's
-- approval (its manifest's "approval"); such a call without an approved plan is answered as
-- a preview whose plan waits here, pending, until an approver token (or the admin
-- credential, or the operator) approves or rejects it with a note.  Only then does a commit
-- with that plan_id go through, still under the stale-plan rule.  Every step is a call
-- record: the asking preview, the decision (airlock/plans.approve or .reject, with the plan
-- and the note as its arguments), and the commit that names the plan.  Pending plans are
-- announced on the NOTIFY channel airlock_plans, one line of JSON each.

-- Approver tokens ---------------------------------------------------------------------------

-- An approver token names the person it was minted for, and grants no tools: it lists,
-- reads, approves and rejects its tenant's plans, and reads its tenant's call record.
ALTER TABLE airlock.tokens ADD COLUMN approver text
    CHECK (approver IS NULL OR length(approver) BETWEEN 1 AND 128);
COMMENT ON COLUMN airlock.tokens.approver IS
    'For an approver token, the person it was minted for (it grants no tools); NULL for a '
    'token that calls tools.';

-- As in 0011, with the approver among what never changes.
CREATE OR REPLACE FUNCTION airlock.guard_token() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'token %: a revocation cannot be undone or moved', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.calls_used < OLD.calls_used OR NEW.expires_at > OLD.expires_at OR
       (NEW.id, NEW.hash, NEW.tenant, NEW.task, NEW.tools, NEW.bindings, NEW.can_revert,
        NEW.preview_only, NEW.max_calls, NEW.created_at, NEW.mint_call, NEW.approver)
       IS DISTINCT FROM
       (OLD.id, OLD.hash, OLD.tenant, OLD.task, OLD.tools, OLD.bindings, OLD.can_revert,
        OLD.preview_only, OLD.max_calls, OLD.created_at, OLD.mint_call, OLD.approver) THEN
        RAISE EXCEPTION 'token %: only its revocation, its call count and an earlier expiry may change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

-- token_lookup as in 0011, with the approver's name last.
DROP FUNCTION airlock.token_lookup(text);
CREATE FUNCTION airlock.token_lookup(hash_hex text)
RETURNS TABLE (token_id text, tenant_name text, tenant_role name, tenant_disabled boolean,
    task text, tools json, bindings jsonb, can_revert boolean, preview_only boolean,
    max_calls integer, calls_used integer, expires_at text, is_expired boolean,
    is_revoked boolean, rate_per_sec double precision, rate_burst double precision,
    approver text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT t.id, t.tenant, n.role, n.disabled, t.task, array_to_json(t.tools), t.bindings,
           t.can_revert, t.preview_only, coalesce(t.max_calls, 0), t.calls_used,
           to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           t.expires_at <= now(), t.revoked_at IS NOT NULL,
           coalesce(n.rate_per_sec, 0), coalesce(n.rate_burst, 0), t.approver
      FROM airlock.tokens t JOIN airlock.tenants n ON n.name = t.tenant
     WHERE hash_hex ~ '^[0-9a-f]{64}$' AND t.hash = decode(hash_hex, 'hex')
$$;

-- Stores a new approver token, as mint_token does a caller's: no tools, no bindings, no
-- revert, no quota.  Returns the expiry, or no row when there is no such tenant.
CREATE FUNCTION airlock.mint_approver_token(mint_call uuid, token_id text, hash_hex text,
    tenant_name text, task text, approver text, ttl integer)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    expires timestamptz;
BEGIN
    IF mint_call IS NULL OR EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = mint_call)
       OR EXISTS (SELECT 1 FROM airlock.tokens t
                   WHERE t.mint_call = mint_approver_token.mint_call) THEN
        RAISE EXCEPTION 'a mint needs a call id of its own' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF hash_hex IS NULL OR hash_hex !~ '^[0-9a-f]{64}$' OR token_id IS DISTINCT FROM left(hash_hex, 12) THEN
        RAISE EXCEPTION 'a token id is the first 12 hex digits of its hash'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl IS NULL OR ttl < 1 OR ttl > 86400 OR task IS NULL OR length(task) NOT BETWEEN 1 AND 128
       OR approver IS NULL OR length(approver) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION 'ttl, task or approver out of range' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO airlock.tokens (id, hash, tenant, task, tools, bindings, can_revert, preview_only,
        max_calls, expires_at, mint_call, approver)
    SELECT token_id, decode(hash_hex, 'hex'), t.name, task, '{}', '{}', false, false, NULL,
           now() + make_interval(secs => ttl), mint_call, approver
      FROM airlock.tenants t WHERE t.name = tenant_name
    RETURNING airlock.tokens.expires_at INTO expires;
    IF expires IS NOT NULL THEN
        RETURN NEXT to_char(expires AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    END IF;
END
$$;

-- Plans that wait for a person --------------------------------------------------------------

ALTER TABLE airlock.plans
    ADD COLUMN approval      text CHECK (approval IN ('pending', 'approved', 'rejected')),
    ADD COLUMN four_eyes     boolean NOT NULL DEFAULT false,
    ADD COLUMN asked_by      text,          -- the asking call's token id
    ADD COLUMN asked_task    text,
    ADD COLUMN decided_by    text,          -- an approver token's id, 'admin' or 'operator'
    ADD COLUMN decided_task  text,
    ADD COLUMN approver      text,          -- the person named by the deciding token
    ADD COLUMN note          text CHECK (length(note) <= 2000),
    ADD COLUMN decided_at    timestamptz,
    ADD COLUMN decision_call uuid;

COMMENT ON COLUMN airlock.plans.approval IS
    'NULL: a plain preview; pending, approved or rejected: a preview held for an approver. '
    'An approval lasts as long as its plan (expires_at).';

CREATE INDEX plans_approval_idx ON airlock.plans (tenant, created_at) WHERE approval IS NOT NULL;
-- Which call applied a plan: the console and plans.get look it up.
CREATE INDEX calls_plan_idx ON airlock.calls (plan_id) WHERE plan_id IS NOT NULL;

-- What a plan's announcement and its listing say of it.
CREATE FUNCTION airlock.plan_json(p airlock.plans) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT jsonb_build_object(
        'plan_id', p.id, 'tenant', p.tenant, 'tool', p.tool,
        'status', CASE WHEN p.approval = 'pending' AND p.expires_at < now() THEN 'expired'
                       ELSE p.approval END,
        'four_eyes', p.four_eyes, 'asked_by', p.asked_by, 'asked_task', p.asked_task,
        'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'expires_at', to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'rows_updated', jsonb_array_length(p.updates),
        'rows_inserted', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(p.inserts) e(k, v)),
        'decided_by', p.decided_by, 'decided_task', p.decided_task, 'approver', p.approver,
        'note', p.note,
        'decided_at', to_char(p.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'decision_call', p.decision_call,
        'applied_by', (SELECT c.id FROM airlock.calls c WHERE c.plan_id = p.id
                         AND c.method = 'tools/call' AND NOT c.dry_run AND c.outcome = 'ok'
                       ORDER BY c.seq LIMIT 1))
$$;

-- A dry-run's plan held for approval: the plan as create_plan stores it (only with its
-- dry-run's record, in the same transaction), pending, with who asked; then announced.
-- The announcement goes out when the transaction commits, so never for a plan that is not
-- there.
CREATE PROCEDURE airlock.create_plan_for_approval(plan uuid, plan_tenant text, plan_tool text,
    plan_fingerprint text, plan_updates jsonb, plan_inserts jsonb, plan_four_eyes boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    p airlock.plans%ROWTYPE;
BEGIN
    CALL airlock.create_plan(plan, plan_tenant, plan_tool, plan_fingerprint, plan_updates,
                             plan_inserts);
    UPDATE airlock.plans x
       SET approval = 'pending', four_eyes = coalesce(plan_four_eyes, false),
           asked_by = c.token_id, asked_task = c.task
      FROM airlock.calls c
     WHERE x.id = plan AND c.id = plan
    RETURNING x.* INTO p;
    PERFORM pg_notify('airlock_plans', airlock.plan_json(p)::text);
END
$$;

-- A plan as create_plan stored it, with its approval (NULL: a plain preview), for a commit.
DROP FUNCTION airlock.plan_get(uuid, text);
CREATE FUNCTION airlock.plan_get(plan uuid, plan_tenant text)
RETURNS TABLE (tool text, fingerprint text, updates text, inserts text, is_expired boolean,
    approval text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT p.tool, p.fingerprint, p.updates::text, p.inserts::text, p.expires_at < now(),
           p.approval
      FROM airlock.plans p WHERE p.id = plan AND p.tenant = plan_tenant
$$;

-- Plans held for approval, newest first: of one tenant (NULL: every tenant), one plan (NULL:
-- any), with one status (pending, approved, rejected, expired; NULL: any).
CREATE FUNCTION airlock.plans_held(list_tenant text, list_plan uuid, list_status text,
    max_rows integer)
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT j::text FROM (
        SELECT airlock.plan_json(p) AS j, p.created_at, p.id FROM airlock.plans p
         WHERE p.approval IS NOT NULL
           AND (list_tenant IS NULL OR p.tenant = list_tenant)
           AND (list_plan IS NULL OR p.id = list_plan)) s
     WHERE list_status IS NULL OR j ->> 'status' = list_status
     ORDER BY created_at DESC, id
     LIMIT least(greatest(max_rows, 1), 500)
$$;

-- Decides a pending plan: approved or rejected, by decider (an approver token's id, 'admin'
-- or 'operator') of decider_tenant (NULL: any tenant's plan), with a note.  The decision's
-- own call record (airlock/plans.approve or .reject, naming the plan) must be written in this
-- transaction: decision and record commit together.  Raises AL404 (no such plan held for
-- approval in that tenant), AL409 (decided already), AL410 (expired), AL403 (four eyes: the
-- approving task is the asking one).
CREATE FUNCTION airlock.decide_plan(plan uuid, decision text, decider_tenant text,
    decider text, decider_task text, approver_name text, decision_note text, decision_call uuid)
RETURNS TABLE (plan_tenant text, plan_tool text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    p airlock.plans%ROWTYPE;
BEGIN
    IF decision IS NULL OR decision NOT IN ('approved', 'rejected')
       OR NOT EXISTS (SELECT 1 FROM airlock.calls c
                       WHERE c.id = decision_call AND airlock.is_this_transaction(c.xmin)
                         AND c.method = CASE decision WHEN 'approved' THEN 'airlock/plans.approve'
                                                      ELSE 'airlock/plans.reject' END
                         AND c.outcome = 'ok' AND c.arguments ->> 'plan_id' = plan::text) THEN
        RAISE EXCEPTION 'a decision goes only with its own call record, in this transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO p FROM airlock.plans x
     WHERE x.id = plan AND x.approval IS NOT NULL
       AND (decider_tenant IS NULL OR x.tenant = decider_tenant)
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no plan % waits for approval', plan USING ERRCODE = 'AL404';
    END IF;
    IF p.approval <> 'pending' THEN
        RAISE EXCEPTION 'plan % was % already', plan, p.approval USING ERRCODE = 'AL409';
    END IF;
    IF p.expires_at < now() THEN
        RAISE EXCEPTION 'plan % has expired', plan USING ERRCODE = 'AL410';
    END IF;
    IF decision = 'approved' AND p.four_eyes AND decider_task IS NOT NULL
       AND decider_task = p.asked_task THEN
        RAISE EXCEPTION 'four eyes: the task that asked cannot approve' USING ERRCODE = 'AL403';
    END IF;
    UPDATE airlock.plans x
       SET approval = decision, decided_by = decider, decided_task = decider_task,
           approver = approver_name, note = decision_note, decided_at = now(),
           decision_call = decide_plan.decision_call
     WHERE x.id = plan;
    plan_tenant := p.tenant;
    plan_tool := p.tool;
    RETURN NEXT;
END
$$;

-- The chain's state, cheaply: the head checkpoint (overall, and the tenant's when given),
-- how many records are not sealed yet, whether the head links to the checkpoint before it,
-- and whether the newest records still match their digests.  A quick look, not a verify:
-- airlockctl audit verify (with an anchor) is the check.
CREATE FUNCTION airlock.chain_state(state_tenant text)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    WITH head AS (SELECT * FROM airlock.checkpoints ORDER BY id DESC LIMIT 1),
         before_head AS (SELECT k.hash FROM airlock.checkpoints k, head
                          WHERE k.id = head.id - 1),
         theirs AS (SELECT tc.* FROM airlock.tenant_checkpoints tc
                     WHERE state_tenant IS NOT NULL AND tc.tenant = state_tenant
                     ORDER BY tc.checkpoint_id DESC LIMIT 1),
         recent AS (SELECT c.digest = encode(sha256(convert_to(airlock.call_canonical(c),
                                                                'UTF8')), 'hex') AS good
                      FROM airlock.calls c
                     WHERE state_tenant IS NULL OR c.tenant = state_tenant
                     ORDER BY c.seq DESC LIMIT 200)
    SELECT jsonb_build_object(
        'checkpoint', (SELECT head.id FROM head),
        'hash', (SELECT head.hash FROM head),
        'sealed_at', (SELECT to_char(head.created_at AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') FROM head),
        'head_links', coalesce((SELECT head.id = 1 OR head.prev_hash = (SELECT hash FROM before_head)
                                  OR head.kind = 'archive' FROM head), true),
        'tenant', state_tenant,
        'tenant_hash', (SELECT theirs.hash FROM theirs),
        'tenant_checkpoint', (SELECT theirs.checkpoint_id FROM theirs),
        'unsealed', (SELECT count(*) FROM airlock.calls c
                      WHERE (state_tenant IS NULL OR c.tenant = state_tenant)
                        AND c.seq > coalesce((SELECT head.last_seq FROM head), 0)
                        AND NOT EXISTS (SELECT 1 FROM airlock.sealed s WHERE s.call_id = c.id)),
        'recent_checked', (SELECT count(*) FROM recent),
        'recent_bad', (SELECT count(*) FROM recent WHERE NOT good))
$$;

-- Grants ------------------------------------------------------------------------------------

REVOKE EXECUTE ON FUNCTION airlock.token_lookup(text),
    airlock.mint_approver_token(uuid, text, text, text, text, text, integer),
    airlock.plan_json(airlock.plans), airlock.plan_get(uuid, text),
    airlock.plans_held(text, uuid, text, integer),
    airlock.decide_plan(uuid, text, text, text, text, text, text, uuid),
    airlock.chain_state(text) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE
    airlock.create_plan_for_approval(uuid, text, text, text, jsonb, jsonb, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION airlock.token_lookup(text),
    airlock.mint_approver_token(uuid, text, text, text, text, text, integer),
    airlock.plan_get(uuid, text), airlock.plans_held(text, uuid, text, integer),
    airlock.decide_plan(uuid, text, text, text, text, text, text, uuid),
    airlock.chain_state(text) TO airlock_gateway;
GRANT EXECUTE ON PROCEDURE
    airlock.create_plan_for_approval(uuid, text, text, text, jsonb, jsonb, boolean)
    TO airlock_gateway;
