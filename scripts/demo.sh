#!/bin/sh
# make demo: a private database, migrated and seeded, a demo token, and airlockd in the foreground.
set -eu

CTL=build/airlockctl
PORT=${AIRLOCK_DEMO_PORT:-8080}

$CTL dev-db start
$CTL migrate
for t in acme globex; do
	$CTL tenant list | cut -f1 | grep -qx "$t" || $CTL tenant add "$t"
done
# dev-db URLs hold no password: they name the dev-db's libpq passfile, so no command line
# here (psql's, airlockd's) carries a secret.
psql -X -q -v ON_ERROR_STOP=1 "$($CTL dev-db url)" -f scripts/demo-seed.sql >/dev/null
# The dev-db directory holds the socket directory; the admin credential lives beside it.
DIR=$(dirname "$($CTL dev-db url | sed -n 's/.*host=\([^&]*\).*/\1/p')")
[ -f "$DIR/admin.key" ] || $CTL token admin-key "$DIR/admin.key"
TOKEN=$($CTL token mint --tenant acme --tool lookup_invoices --tool get_customer \
	--tool search_customers --tool void_invoice --ttl 1h --task demo 2>/dev/null)
# void_invoice needs an approver's approval, with four eyes: the approver's task is not
# the agent's.
APPROVER=$($CTL token mint --tenant acme --approver "Support Lead" --task support-lead \
	--ttl 8h 2>/dev/null)

cat <<MSG

airlockd is starting on http://127.0.0.1:$PORT (Ctrl-C stops it; 'make stop' stops the database).
A token for tenant acme, valid for an hour:

  TOKEN=$TOKEN

  curl -s http://127.0.0.1:$PORT/rpc -H 'Content-Type: application/json' \\
    -H "Authorization: Bearer \$TOKEN" \\
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_invoices","arguments":{"customer_id":1}}}'

Approvals: the token may call void_invoice, which needs a person's approval.  An approver
token for "Support Lead" (tenant acme, valid for 8 hours):

  APPROVER=$APPROVER

  curl -s http://127.0.0.1:$PORT/rpc -H 'Content-Type: application/json' \\
    -H "Authorization: Bearer \$TOKEN" \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"void_invoice","arguments":{"invoice_id":2}}}'

answers a preview with "status":"approval_required" and a plan_id; approve it in the console,
http://127.0.0.1:$PORT/console (paste \$APPROVER), or with $CTL plan approve PLAN_ID;
then call again with "plan_id" and an "idempotency_key".  docs/calling.md, "Approvals",
shows every step.

MSG
exec build/airlockd --listen "127.0.0.1:$PORT" --db "$($CTL dev-db url --role gateway)" \
	--tools tools --admin-key-file "$DIR/admin.key"
