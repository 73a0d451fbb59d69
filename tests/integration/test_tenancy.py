"""Tenancy: airlockctl tenant and table, the roles, and row-level security as the gateway's
login role sees it (each statement in a transaction that sets a tenant role
transaction-locally, as airlockd does); and the demo seed, on a database of its own.

The shared cluster is used with tenants and scratch schemas of random names, so these tests
never meet another test's data."""
import secrets
import subprocess

import pytest

from conftest import ROOT, ctl, own_cluster

USAGE = 64
DATAERR = 65
UNAVAILABLE = 69

SEED = ROOT / "scripts" / "demo-seed.sql"


def new_name(prefix="t_"):
    return prefix + secrets.token_hex(5)


def psql_script(url, script, check=True):
    """Runs a psql script (quiet, unaligned, tuples only); returns the CompletedProcess."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url],
                       input=script, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"psql failed:\n{script}\n{p.stderr}")
    return p


def as_tenant(url, role, sql, check=True):
    """Runs sql through url (the gateway's login) in one transaction with the role set
    transaction-locally, the way airlockd runs a call; returns the CompletedProcess."""
    script = (f"BEGIN;\nSELECT set_config('role', '{role}', true) \\g /dev/null\n"
              f"{sql}\nCOMMIT;\n")
    return psql_script(url, script, check=check)


def tenant(cluster, *args, check=False):
    return ctl("tenant", *args, "--db", cluster.operator_url, check=check)


def table(cluster, *args, check=False):
    return ctl("table", *args, "--db", cluster.operator_url, check=check)


def add_tenant(cluster):
    name = new_name()
    p = tenant(cluster, "add", name, check=True)
    assert f"tenant_{name}" in p.stdout
    return name, f"tenant_{name}"


@pytest.fixture(scope="module")
def pair(cluster):
    """Two tenants of this module: (role of A, role of B)."""
    return add_tenant(cluster)[1], add_tenant(cluster)[1]


# --- airlockctl tenant ---------------------------------------------------------------------

def listed(cluster):
    out = tenant(cluster, "list", check=True).stdout
    return {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}


def test_tenant_add_list_disable_enable(cluster):
    name, role = add_tenant(cluster)
    assert listed(cluster)[name] == [name, role, "enabled"]
    assert cluster.psql(f"select role, disabled from airlock.tenants where name = '{name}'") \
        == f"{role}|f\n"
    # A NOLOGIN role in airlock_tenants; the gateway and the operator are members.
    assert cluster.psql(
        f"select rolcanlogin, rolinherit, rolsuper, rolbypassrls, rolcreaterole"
        f" from pg_roles where rolname = '{role}'") == "f|t|f|f|f\n"
    assert cluster.psql(
        f"select pg_has_role('{role}', 'airlock_tenants', 'MEMBER'),"
        f" pg_has_role('airlock_gateway', '{role}', 'MEMBER'),"
        f" pg_has_role('airlock_gateway', '{role}', 'USAGE'),"
        f" pg_has_role('airlock_operator', '{role}', 'MEMBER')") == "t|t|f|t\n"

    p = tenant(cluster, "disable", name)
    assert p.returncode == 0, p.stderr
    assert listed(cluster)[name][2] == "disabled"
    assert cluster.psql(f"select disabled from airlock.tenants where name = '{name}'") == "t\n"
    p = tenant(cluster, "enable", name)
    assert p.returncode == 0, p.stderr
    assert listed(cluster)[name][2] == "enabled"
    assert cluster.psql(f"select disabled from airlock.tenants where name = '{name}'") == "f\n"


def test_plural_noun_and_help(cluster):
    name, _ = add_tenant(cluster)
    p = ctl("tenants", "list", "--db", cluster.operator_url)
    assert any(line.startswith(name + "\t") for line in p.stdout.splitlines())
    for noun in ("tenant", "table"):
        p = ctl(noun, "--help")
        assert p.returncode == 0 and p.stdout.startswith("usage:")
    assert "tenant" in ctl("--help").stdout and "table" in ctl("--help").stdout


def test_add_of_existing_tenant_or_role_is_refused(cluster):
    name, _ = add_tenant(cluster)
    p = tenant(cluster, "add", name)
    assert p.returncode == DATAERR
    assert "already exists" in p.stderr

    # A role of that name that is not a tenant's is not taken over.
    other = new_name()
    cluster.psql(f"create role tenant_{other} nologin")
    try:
        p = tenant(cluster, "add", other)
        assert p.returncode == DATAERR
        assert f"role tenant_{other} already exists" in p.stderr
        assert cluster.psql(f"select count(*) from airlock.tenants where name = '{other}'") \
            == "0\n"
        assert cluster.psql(f"select pg_has_role('airlock_gateway', 'tenant_{other}', 'MEMBER')") \
            == "f\n"
    finally:
        cluster.psql(f"drop role tenant_{other}")


@pytest.mark.parametrize("bad", ["", "Acme", "1acme", "a-b", "a b", "ä", "x" * 42,
                                 "a'; drop role airlock_gateway; --", "tenant_\"x\""])
def test_bad_names_are_refused(cluster, bad):
    roles = cluster.psql("select count(*) from pg_roles")
    p = tenant(cluster, "add", bad)
    assert p.returncode == DATAERR, p.stderr
    assert "invalid tenant name" in p.stderr
    assert cluster.psql("select count(*) from pg_roles") == roles


def test_usage_errors_and_unknown_tenant(cluster, tmp_path):
    for args in (("tenant",), ("tenant", "add"), ("tenant", "add", "a", "b"),
                 ("tenant", "frob"), ("tenant", "list", "extra"), ("tenant", "--bogus"),
                 ("table",), ("table", "adopt"), ("table", "drop", "billing.invoices")):
        p = ctl(*args, "--db", cluster.operator_url, check=False)
        assert p.returncode == USAGE, (args, p.stderr)
        assert p.stderr.startswith("airlockctl "), p.stderr
    p = tenant(cluster, "disable", new_name())
    assert p.returncode == DATAERR and "no tenant named" in p.stderr
    p = tenant(cluster, "enable", new_name())
    assert p.returncode == DATAERR and "no tenant named" in p.stderr
    p = ctl("tenant", "list", "--db", f"postgresql:///airlock?host={tmp_path}", check=False)
    assert p.returncode == UNAVAILABLE and "cannot connect" in p.stderr


def test_only_the_operator_manages_tenants(cluster):
    p = cluster.psql("select airlock.tenant_add('t_gateway_try')", url=cluster.gateway_url,
                     check=False)
    assert p.returncode != 0 and "permission denied" in p.stderr
    p = cluster.psql("select airlock.adopt_table('billing.customers')",
                     url=cluster.gateway_url, check=False)
    assert p.returncode != 0 and "permission denied" in p.stderr


# --- roles ---------------------------------------------------------------------------------

def test_gateway_role_attributes(cluster):
    assert cluster.psql("select rolinherit, rolbypassrls, rolcreaterole, rolsuper, rolcanlogin"
                        " from pg_roles where rolname = 'airlock_gateway'") == "f|f|f|f|t\n"
    owned = cluster.psql(
        "select (select count(*) from pg_class where relowner = r.oid)"
        " + (select count(*) from pg_namespace where nspowner = r.oid)"
        " + (select count(*) from pg_proc where proowner = r.oid)"
        " + (select count(*) from pg_type where typowner = r.oid)"
        " from pg_roles r where r.rolname = 'airlock_gateway'")
    assert owned == "0\n"
    assert cluster.psql("select rolinherit, rolcanlogin, rolbypassrls from pg_roles"
                        " where rolname = 'airlock_tenants'") == "f|f|f\n"


# --- airlockctl table ----------------------------------------------------------------------

BILLING = ("customers", "invoices", "refunds", "support_notes")


def treatment(cluster):
    """Everything adopt sets on the demo tables, as text, for before/after comparisons."""
    return cluster.psql(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text,"
        " v.reloptions::text, v.relacl::text,"
        " (select string_agg(p.polname || ':' || p.polcmd::text || ':' ||"
        "   pg_get_expr(p.polqual, p.polrelid) || ':' || pg_get_expr(p.polwithcheck, p.polrelid),"
        "   ',' order by p.polname) from pg_policy p where p.polrelid = c.oid),"
        " (select string_agg(schema_name || '.' || table_name, ',' order by table_name)"
        "   from airlock.tenant_tables where schema_name = 'billing')"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " join pg_class v on v.relname = c.relname || '_live' and v.relnamespace = n.oid"
        " where n.nspname = 'billing' and c.relkind = 'r' order by c.relname")


def test_demo_tables_are_adopted(cluster):
    out = table(cluster, "list", check=True).stdout
    assert [line.split("\t")[0] for line in out.splitlines()
            if line.startswith("billing.")] == [f"billing.{t}" for t in BILLING]
    for t in BILLING:
        assert cluster.psql(
            f"select relrowsecurity, relforcerowsecurity from pg_class"
            f" where oid = 'billing.{t}'::regclass") == "t|t\n"
        assert cluster.psql(
            f"select polname, polcmd, polpermissive, pg_get_expr(polqual, polrelid),"
            f" pg_get_expr(polwithcheck, polrelid) from pg_policy"
            f" where polrelid = 'billing.{t}'::regclass") \
            == "tenant_isolation|*|t|(tenant = CURRENT_USER)|(tenant = CURRENT_USER)\n"
        assert cluster.psql(f"select reloptions from pg_class"
                            f" where oid = 'billing.{t}_live'::regclass") \
            == "{security_invoker=true}\n"
        privs = cluster.psql(
            "select string_agg(p, ',' order by p) from unnest(array['SELECT', 'INSERT',"
            " 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p"
            f" where has_table_privilege('airlock_tenants', 'billing.{t}', p)")
        assert privs == "INSERT,SELECT,UPDATE\n"
        assert cluster.psql(f"select has_table_privilege('airlock_tenants',"
                            f" 'billing.{t}_live', 'SELECT'),"
                            f" has_table_privilege('airlock_tenants', 'billing.{t}_live',"
                            f" 'UPDATE')") == "t|f\n"


def test_adopt_rerun_is_harmless(cluster, pair):
    a, _ = pair
    as_tenant(cluster.gateway_url, a,
              "INSERT INTO billing.customers (email, name) VALUES ('rerun@a.example', 'R');")
    before = treatment(cluster)
    for _ in range(2):
        p = table(cluster, "adopt", *[f"billing.{t}" for t in BILLING])
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[0].startswith("re-applied to billing.customers")
        assert len(p.stdout.splitlines()) == len(BILLING)
    assert treatment(cluster) == before
    assert as_tenant(cluster.gateway_url, a, "SELECT email FROM billing.customers_live"
                     " WHERE email = 'rerun@a.example';").stdout == "rerun@a.example\n"


@pytest.fixture
def scratch(cluster):
    """A schema of this test's own, dropped afterwards with anything adopted in it."""
    s = new_name("s_")
    cluster.psql(f"create schema {s}")
    yield s
    cluster.psql(f"drop schema {s} cascade;"
                 f" delete from airlock.tenant_tables where schema_name = '{s}'")


GOOD = ("create table {s}.t (tenant name not null default current_user,"
        " id bigint generated always as identity, email text, pid bigint,"
        " deleted_at timestamptz, primary key (tenant, id), unique (tenant, email))")
PARENT = ("create table {s}.p (tenant name not null default current_user, id bigint,"
          " deleted_at timestamptz, primary key (tenant, id));")
PLAIN_PARENT = "create table {s}.p (id bigint primary key);"

REFUSED = {
    "no_tenant": ("create table {s}.t (id bigint primary key, deleted_at timestamptz)",
                  "no column tenant"),
    "tenant_text": ("create table {s}.t (tenant text not null, id bigint,"
                    " deleted_at timestamptz, primary key (tenant, id))", "no column tenant"),
    "tenant_nullable": ("create table {s}.t (tenant name, id bigint, deleted_at timestamptz,"
                        " unique (tenant, id))", "no column tenant"),
    "no_pk": ("create table {s}.t (tenant name not null, id bigint, deleted_at timestamptz)",
              "no primary key"),
    "no_deleted_at": ("create table {s}.t (tenant name not null, id bigint,"
                      " primary key (tenant, id))", "deleted_at"),
    "pk": ("create table {s}.t (tenant name not null, id bigint, deleted_at timestamptz,"
           " constraint t_pk_alone primary key (id))", "primary key t_pk_alone"),
    "unique": (GOOD + "; alter table {s}.t add constraint t_email_alone unique (email)",
               "unique constraint t_email_alone"),
    "unique_index": (GOOD + "; create unique index t_email_idx on {s}.t (email)",
                     "unique index t_email_idx"),
    "unique_include": (GOOD + "; create unique index t_incl on {s}.t (email) include (tenant)",
                       "unique index t_incl"),
    "fk_out": (PLAIN_PARENT + GOOD + "; alter table {s}.t add constraint t_fk_plain"
               " foreign key (pid) references {s}.p (id)", "foreign key t_fk_plain"),
    "fk_out_other_column": (PARENT + GOOD.replace("pid bigint", "pid bigint, owner name")
                            + "; alter table {s}.t add constraint t_fk_owner"
                            " foreign key (owner, pid) references {s}.p (tenant, id)",
                            "foreign key t_fk_owner"),
    "fk_in": (GOOD + "; create table {s}.c (owner name, tid bigint, constraint c_fk_in"
              " foreign key (owner, tid) references {s}.t (tenant, id))",
              "foreign key c_fk_in"),
    "policy": (GOOD + "; create policy peek on {s}.t using (true)", "policy peek"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_adopt_refuses_keys_without_tenant(cluster, scratch, case):
    ddl, message = REFUSED[case]
    cluster.psql(ddl.format(s=scratch))
    p = table(cluster, "adopt", f"{scratch}.t")
    assert p.returncode == DATAERR, p.stdout + p.stderr
    assert message in p.stderr
    assert p.stdout == ""
    assert cluster.psql(f"select count(*) from airlock.tenant_tables"
                        f" where schema_name = '{scratch}'") == "0\n"
    assert cluster.psql(f"select relrowsecurity from pg_class where oid = '{scratch}.t'::regclass") \
        == "f\n"
    assert cluster.psql(f"select to_regclass('{scratch}.t_live') is null") == "t\n"


def test_adopt_a_good_table_all_or_nothing(cluster, scratch, pair):
    a, b = pair
    cluster.psql(GOOD.format(s=scratch) + f"; create table {scratch}.bad (id bigint primary key,"
                 " deleted_at timestamptz)")
    # One refused table and nothing is adopted.
    p = table(cluster, "adopt", f"{scratch}.t", f"{scratch}.bad")
    assert p.returncode == DATAERR
    assert f"{scratch}.bad" in p.stderr and "nothing was adopted" in p.stderr
    assert cluster.psql(f"select count(*) from airlock.tenant_tables"
                        f" where schema_name = '{scratch}'") == "0\n"
    assert cluster.psql(f"select relrowsecurity from pg_class where oid = '{scratch}.t'::regclass") \
        == "f\n"

    p = table(cluster, "adopt", f"{scratch}.t")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"adopted {scratch}.t:")
    assert f"{scratch}.t\t" in table(cluster, "list", check=True).stdout
    p = table(cluster, "adopt", f"{scratch}.t")
    assert p.returncode == 0 and p.stdout.startswith(f"re-applied to {scratch}.t:")

    as_tenant(cluster.gateway_url, a, f"INSERT INTO {scratch}.t (email) VALUES ('x@a');")
    assert as_tenant(cluster.gateway_url, a, f"SELECT email FROM {scratch}.t_live;").stdout \
        == "x@a\n"
    assert as_tenant(cluster.gateway_url, b, f"SELECT count(*) FROM {scratch}.t;").stdout \
        == "0\n"


def test_adopt_bad_names(cluster):
    p = table(cluster, "adopt", "customers")
    assert p.returncode == DATAERR and "schema" in p.stderr
    p = table(cluster, "adopt", "billing.no_such_table")
    assert p.returncode == DATAERR and "no such table: billing.no_such_table" in p.stderr
    p = table(cluster, "adopt", "airlock.tenants")
    assert p.returncode == DATAERR and "holds no tenant tables" in p.stderr
    p = table(cluster, "adopt", "billing.customers_live")
    assert p.returncode == DATAERR and "not a table" in p.stderr


# --- row-level security through the gateway's login ----------------------------------------

def insert_customer(cluster, role, email):
    """Inserts a customer as role; returns its id."""
    out = as_tenant(cluster.gateway_url, role,
                    f"INSERT INTO billing.customers (email, name) VALUES ('{email}', 'N')"
                    " RETURNING id;").stdout
    return int(out)


def test_rows_are_invisible_across_tenants(cluster, pair):
    a, b = pair
    email = new_name() + "@a.example"
    cid = insert_customer(cluster, a, email)
    as_tenant(cluster.gateway_url, a,
              "INSERT INTO billing.invoices (customer_id, number, amount)"
              f" VALUES ({cid}, 'INV-{email}', 10.50);")
    for t in ("customers", "customers_live"):
        assert as_tenant(cluster.gateway_url, a,
                         f"SELECT id FROM billing.{t} WHERE email = '{email}';").stdout \
            == f"{cid}\n"
        assert as_tenant(cluster.gateway_url, b,
                         f"SELECT count(*) FROM billing.{t} WHERE email = '{email}' OR id = {cid};"
                         ).stdout == "0\n"
    for t in ("customers", "customers_live", "invoices", "invoices_live"):
        assert as_tenant(cluster.gateway_url, b,
                         f"SELECT count(*) FROM billing.{t} WHERE tenant <> current_user;"
                         ).stdout == "0\n"
    # B can neither change nor soft-delete A's row: it matches nothing.
    assert as_tenant(cluster.gateway_url, b,
                     "WITH u AS (UPDATE billing.customers SET name = 'x', deleted_at = now()"
                     f" WHERE id = {cid} RETURNING 1) SELECT count(*) FROM u;").stdout == "0\n"
    assert as_tenant(cluster.gateway_url, a,
                     f"SELECT name, deleted_at IS NULL FROM billing.customers WHERE id = {cid};"
                     ).stdout == "N|t\n"
    # The operator, owner of the table, sees nothing either without a tenant role.
    assert cluster.psql(f"select count(*) from billing.customers where email = '{email}'") \
        == "0\n"


def test_role_does_not_outlive_the_transaction(cluster, pair):
    a, _ = pair
    p = psql_script(cluster.gateway_url,
                    f"BEGIN;\nSELECT set_config('role', '{a}', true) \\g /dev/null\n"
                    "SELECT current_user;\nCOMMIT;\nSELECT current_user;\n")
    assert p.stdout == f"{a}\nairlock_gateway\n"


@pytest.mark.parametrize("relation", ["billing.customers", "billing.customers_live",
                                      "billing.invoices", "billing.invoices_live",
                                      "billing.refunds", "billing.support_notes_live"])
def test_gateway_without_tenant_role_reads_nothing(cluster, relation):
    p = cluster.psql(f"select count(*) from {relation}", url=cluster.gateway_url, check=False)
    assert p.returncode != 0
    assert "permission denied" in p.stderr


def test_tenant_cannot_delete_or_truncate(cluster, pair):
    a, _ = pair
    email = new_name() + "@a.example"
    insert_customer(cluster, a, email)
    for sql in (f"DELETE FROM billing.customers WHERE email = '{email}';",
                f"DELETE FROM billing.customers_live WHERE email = '{email}';",
                "TRUNCATE billing.customers;", "TRUNCATE billing.support_notes;"):
        p = as_tenant(cluster.gateway_url, a, sql, check=False)
        assert p.returncode != 0, sql
        assert "permission denied" in p.stderr, (sql, p.stderr)
    assert as_tenant(cluster.gateway_url, a, "SELECT count(*) FROM billing.customers"
                     f" WHERE email = '{email}';").stdout == "1\n"


def test_tenant_cannot_write_rows_of_another(cluster, pair):
    a, b = pair
    p = as_tenant(cluster.gateway_url, a, "INSERT INTO billing.customers (tenant, email, name)"
                  f" VALUES ('{b}', 'forged@b.example', 'F');", check=False)
    assert p.returncode != 0 and "row-level security" in p.stderr
    email = new_name() + "@a.example"
    cid = insert_customer(cluster, a, email)
    p = as_tenant(cluster.gateway_url, a,
                  f"UPDATE billing.customers SET tenant = '{b}' WHERE id = {cid};", check=False)
    assert p.returncode != 0 and "row-level security" in p.stderr
    assert as_tenant(cluster.gateway_url, b, "SELECT count(*) FROM billing.customers"
                     " WHERE email IN ('forged@b.example', '" + email + "');").stdout == "0\n"


def test_soft_delete_and_its_undo(cluster, pair):
    a, _ = pair
    email = new_name() + "@a.example"
    cid = insert_customer(cluster, a, email)
    gw = cluster.gateway_url

    def counts():
        return as_tenant(gw, a, f"SELECT (SELECT count(*) FROM billing.customers WHERE id = {cid}),"
                         f" (SELECT count(*) FROM billing.customers_live WHERE id = {cid});"
                         ).stdout

    assert counts() == "1|1\n"
    assert as_tenant(gw, a, "WITH u AS (UPDATE billing.customers SET deleted_at = now()"
                     f" WHERE id = {cid} RETURNING id) SELECT count(*) FROM u;").stdout == "1\n"
    assert counts() == "1|0\n"
    assert as_tenant(gw, a, "WITH u AS (UPDATE billing.customers SET deleted_at = NULL"
                     f" WHERE id = {cid} RETURNING id) SELECT count(*) FROM u;").stdout == "1\n"
    assert counts() == "1|1\n"


def test_unique_constraint_does_not_reveal_another_tenants_values(cluster, pair):
    a, b = pair
    email = new_name() + "@shared.example"
    insert_customer(cluster, b, email)
    # A may use the same email: uniqueness is per tenant, so nothing tells A that B has it.
    insert_customer(cluster, a, email)
    # A's own duplicate fails, naming the constraint and A's own key only.
    p = as_tenant(cluster.gateway_url, a, "INSERT INTO billing.customers (email, name)"
                  f" VALUES ('{email}', 'again');", check=False)
    assert p.returncode != 0 and "customers_tenant_email_key" in p.stderr
    assert b not in p.stderr


def test_foreign_key_cannot_point_at_another_tenants_row(cluster, pair):
    a, b = pair
    b_customer = insert_customer(cluster, b, new_name() + "@b.example")
    p = as_tenant(cluster.gateway_url, a,
                  "INSERT INTO billing.invoices (customer_id, number, amount)"
                  f" VALUES ({b_customer}, 'X-{b_customer}', 1);", check=False)
    assert p.returncode != 0
    assert "invoices_tenant_customer_id_fkey" in p.stderr
    assert b not in p.stderr
    # And A cannot re-point its own invoice at B's customer either.
    a_customer = insert_customer(cluster, a, new_name() + "@a.example")
    inv = as_tenant(cluster.gateway_url, a,
                    "INSERT INTO billing.invoices (customer_id, number, amount)"
                    f" VALUES ({a_customer}, 'Y-{a_customer}', 1) RETURNING id;").stdout.strip()
    p = as_tenant(cluster.gateway_url, a, f"UPDATE billing.invoices SET customer_id = {b_customer}"
                  f" WHERE id = {inv};", check=False)
    assert p.returncode != 0 and "invoices_tenant_customer_id_fkey" in p.stderr


# --- the demo seed, on a database of its own -------------------------------------------------

@pytest.fixture(scope="module")
def seeded():
    """A fresh dev-db: migrated, tenants acme and globex added, the demo seed loaded.
    Returns (operator URL, gateway URL)."""
    with own_cluster(migrate=False) as c:
        op, gw = c.operator_url, c.gateway_url
        p = ctl("tenant", "list", "--db", op, check=False)
        assert p.returncode == UNAVAILABLE and "not migrated" in p.stderr, p.stderr
        ctl("migrate", "--db", op, "--dir", ROOT / "migrations")
        ctl("tenant", "add", "acme", "--db", op)
        ctl("tenant", "add", "globex", "--db", op)
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", op, "-f", str(SEED)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        yield op, gw


def seed_snapshot(gw):
    out = []
    for role in ("tenant_acme", "tenant_globex"):
        for t in BILLING:
            out.append(as_tenant(gw, role, f"SELECT string_agg(id::text, ',' ORDER BY id)"
                                 f" FROM billing.{t};").stdout)
    return out


def test_demo_seed_each_tenant_sees_its_own(seeded):
    op, gw = seeded

    def q(role, sql):
        return as_tenant(gw, role, sql).stdout

    # The ids the seed's header documents.
    assert q("tenant_acme", "SELECT string_agg(id::text, ',' ORDER BY id) FROM billing.customers;") \
        == "1,2,3,4,5\n"
    assert q("tenant_globex", "SELECT string_agg(id::text, ',' ORDER BY id) FROM billing.customers;") \
        == "6,7,8,9\n"
    assert q("tenant_acme", "SELECT min(id), max(id) FROM billing.invoices;") == "1|8\n"
    assert q("tenant_globex", "SELECT min(id), max(id) FROM billing.invoices;") == "9|14\n"
    # One soft-deleted invoice and note each, left out of the _live views.
    for role, invoices, notes in (("tenant_acme", "8|7", "3|2"), ("tenant_globex", "6|5", "3|2")):
        assert q(role, "SELECT (SELECT count(*) FROM billing.invoices),"
                 " (SELECT count(*) FROM billing.invoices_live);") == invoices + "\n"
        assert q(role, "SELECT (SELECT count(*) FROM billing.support_notes),"
                 " (SELECT count(*) FROM billing.support_notes_live);") == notes + "\n"
        assert q(role, "SELECT count(*) FROM billing.refunds_live;") == "1\n"
        assert q(role, "SELECT count(DISTINCT status) >= 4 FROM billing.invoices;") == "t\n"
        assert q(role, "SELECT count(*) FROM billing.customers WHERE tenant <> current_user;") \
            == "0\n"
    # Distinct data: only the one shared email, held separately by each tenant.
    acme = set(q("tenant_acme", "SELECT email FROM billing.customers;").split())
    globex = set(q("tenant_globex", "SELECT email FROM billing.customers;").split())
    assert acme & globex == {"alice@northwind.example"}
    assert q("tenant_acme", "SELECT number FROM billing.invoices WHERE number LIKE 'GLX-%';") == ""

    # Loading it again changes nothing.
    before = seed_snapshot(gw)
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", op, "-f", str(SEED)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "skipped" in p.stderr
    assert seed_snapshot(gw) == before
