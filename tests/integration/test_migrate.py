"""airlockctl migrate: fresh, re-run, changed, missing, badly named and failing migrations;
the shape of the schemas they create."""
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import CTL, ROOT, ctl, own_cluster

MIGRATIONS = ROOT / "migrations"
DATAERR = 65
NOINPUT = 66
UNAVAILABLE = 69


@pytest.fixture(scope="module")
def fresh():
    """A dev-db of its own, never migrated by the shared fixture."""
    with own_cluster(migrate=False) as c:
        yield c.operator_url


def migrate(url, dirpath=MIGRATIONS, env=None):
    return ctl("migrate", "--db", url, "--dir", dirpath, check=False, env=env)


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def files():
    return sorted(f for f in os.listdir(MIGRATIONS) if f.endswith(".sql"))


def copy_migrations(tmp_path):
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    return d


def test_fresh_database_gets_every_migration(fresh):
    assert psql(fresh, "select to_regclass('airlock.schema_migrations') is null") == "t\n"
    p = migrate(fresh)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"applied {f}" for f in files()]
    rows = psql(fresh, "select version, name, checksum from airlock.schema_migrations"
                       " order by version").splitlines()
    want = [f"{int(f[:4])}|{f}|{hashlib.sha256((MIGRATIONS / f).read_bytes()).hexdigest()}"
            for f in files()]
    assert rows == want


def test_rerun_is_a_noop(fresh):
    assert migrate(fresh).returncode == 0
    before = psql(fresh, "select version, applied_at from airlock.schema_migrations")
    p = migrate(fresh)
    assert p.returncode == 0, p.stderr
    assert "up to date" in p.stdout
    assert "applied 0" not in p.stdout
    assert psql(fresh, "select version, applied_at from airlock.schema_migrations") == before


def test_changed_applied_file_is_refused(fresh, tmp_path):
    assert migrate(fresh).returncode == 0
    d = copy_migrations(tmp_path)
    with open(d / "0001_core.sql", "a") as f:
        f.write("\n-- an innocent edit\n")
    (d / "0099_later.sql").write_text("create table airlock.never_applied (a int);\n")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert "0001_core.sql" in p.stderr and "changed" in p.stderr
    # Nothing after the refusal ran.
    assert psql(fresh, "select to_regclass('airlock.never_applied') is null") == "t\n"
    assert psql(fresh, "select max(version) from airlock.schema_migrations") == \
        f"{int(files()[-1][:4])}\n"


def test_changed_file_refused_on_shared_cluster(cluster, tmp_path):
    # Refusal writes nothing, so the shared cluster can take it.
    d = copy_migrations(tmp_path)
    with open(d / "0002_billing.sql", "a") as f:
        f.write("-- edit\n")
    p = migrate(cluster.operator_url, d)
    assert p.returncode == DATAERR
    assert "0002_billing.sql" in p.stderr


def test_missing_or_renamed_applied_file_is_refused(fresh, tmp_path):
    assert migrate(fresh).returncode == 0
    d = copy_migrations(tmp_path)
    os.rename(d / "0002_billing.sql", d / "0002_invoicing.sql")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR and "0002_billing.sql" in p.stderr
    os.unlink(d / "0002_invoicing.sql")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert "0002_billing.sql" in p.stderr and "missing" in p.stderr


@pytest.mark.parametrize("name", ["3_short.sql", "0003-dash.sql", "0003_Upper.sql",
                                  "0000_zero.sql", "abcd_x.sql", "0003_.sql"])
def test_badly_named_file_is_refused(fresh, tmp_path, name):
    d = copy_migrations(tmp_path)
    (d / name).write_text("select 1;\n")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert name in p.stderr


def test_other_files_are_ignored(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "README").write_text("notes\n")
    (d / ".0003_hidden.sql").write_text("select 1/0;\n")
    p = migrate(fresh, d)
    assert p.returncode == 0, p.stderr
    assert "up to date" in p.stdout


def test_duplicate_number_is_refused(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "0099_a.sql").write_text("select 1;\n")
    (d / "0099_b.sql").write_text("select 1;\n")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert "0099_a.sql" in p.stderr and "0099_b.sql" in p.stderr


def test_failing_migration_rolls_back_entirely(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "0099_broken.sql").write_text(
        "create table airlock.half_done (a int);\nselect 1/0;\n")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert "0099_broken.sql" in p.stderr and "division by zero" in p.stderr
    assert psql(fresh, "select to_regclass('airlock.half_done') is null") == "t\n"
    assert psql(fresh, "select count(*) from airlock.schema_migrations where version = 99") == "0\n"


def test_transaction_control_in_a_file_is_refused(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "0099_commits.sql").write_text("commit;\n")
    p = migrate(fresh, d)
    assert p.returncode == DATAERR
    assert "0099_commits.sql" in p.stderr
    assert psql(fresh, "select count(*) from airlock.schema_migrations where version = 99") == "0\n"


def test_new_file_is_applied_then_numbered_below_refused(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "0098_extra.sql").write_text("create table airlock.extra_test (a int);\n")
    try:
        p = migrate(fresh, d)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == ["applied 0098_extra.sql"]
        assert psql(fresh, "select to_regclass('airlock.extra_test') is not null") == "t\n"
        (d / "0097_late.sql").write_text("select 1;\n")
        p = migrate(fresh, d)
        assert p.returncode == DATAERR
        assert "0097_late.sql" in p.stderr
    finally:
        psql(fresh, "drop table if exists airlock.extra_test;"
                    " delete from airlock.schema_migrations where version = 98")
    assert migrate(fresh).returncode == 0


def test_concurrent_runs_wait_for_each_other(fresh, tmp_path):
    d = copy_migrations(tmp_path)
    (d / "0099_slow.sql").write_text("select pg_sleep(1);\n"
                                     "create table airlock.slow_test (a int);\n")
    try:
        procs = [subprocess.Popen([str(CTL), "migrate", "--db", fresh, "--dir", str(d)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        stdout = "".join(o for o, _ in outs)
        assert stdout.count("applied 0099_slow.sql") == 1
        assert "up to date" in stdout
    finally:
        psql(fresh, "drop table if exists airlock.slow_test;"
                    " delete from airlock.schema_migrations where version = 99")


def test_database_from_environment(cluster):
    env = {k: v for k, v in os.environ.items() if k != "AIRLOCK_DEV_DIR"}
    env.update(AIRLOCK_DB=cluster.operator_url, AIRLOCK_MIGRATIONS=str(MIGRATIONS))
    p = ctl("migrate", env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert "up to date" in p.stdout


def test_unreachable_database_and_missing_dir(cluster, tmp_path):
    p = migrate(f"postgresql:///airlock?host={tmp_path}")
    assert p.returncode == UNAVAILABLE
    assert "cannot connect" in p.stderr
    p = migrate(cluster.operator_url, tmp_path / "nowhere")
    assert p.returncode == NOINPUT
    assert "nowhere" in p.stderr


def test_core_schema(cluster):
    p = cluster.psql("insert into airlock.tenants (name, role) values ('Bad-Name', 'r')",
                     check=False)
    assert p.returncode != 0 and "check" in p.stderr
    cols = cluster.psql("select string_agg(column_name, ',' order by ordinal_position)"
                        " from information_schema.columns where table_schema = 'airlock'"
                        " and table_name = 'tenant_tables'")
    assert cols == "schema_name,table_name,adopted_at\n"


BILLING = ("customers", "invoices", "refunds", "support_notes")


def test_billing_tables_have_tenant_and_deleted_at(cluster):
    for t in BILLING:
        row = cluster.psql(
            "select data_type, is_nullable, column_default from information_schema.columns"
            f" where table_schema = 'billing' and table_name = '{t}' and column_name = 'tenant'")
        assert row == "name|NO|CURRENT_USER\n", t
        assert cluster.psql("select count(*) from information_schema.columns where"
                            f" table_schema = 'billing' and table_name = '{t}'"
                            " and column_name = 'deleted_at'") == "1\n", t


def test_every_key_includes_tenant(cluster):
    # Primary keys, unique constraints and foreign keys (both ends) that leave tenant out.
    bad = cluster.psql("""
        select c.conname from pg_constraint c
        join pg_namespace n on n.oid = c.connamespace
        where n.nspname = 'billing' and c.contype in ('p', 'u', 'f')
          and (not exists (select 1 from pg_attribute a where a.attrelid = c.conrelid
                           and a.attname = 'tenant' and a.attnum = any (c.conkey))
               or (c.contype = 'f' and not exists (
                     select 1 from pg_attribute a where a.attrelid = c.confrelid
                     and a.attname = 'tenant' and a.attnum = any (c.confkey))))""")
    assert bad == ""
    # Every table has its primary key, and the foreign keys exist.
    assert cluster.psql("select count(*) from pg_constraint c join pg_namespace n"
                        " on n.oid = c.connamespace where n.nspname = 'billing'"
                        " and c.contype = 'p'") == f"{len(BILLING)}\n"
    assert int(cluster.psql("select count(*) from pg_constraint c join pg_namespace n"
                            " on n.oid = c.connamespace where n.nspname = 'billing'"
                            " and c.contype = 'f'")) >= 4


