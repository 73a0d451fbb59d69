"""scripts/check-walls.sh: it passes on the tree as it is, and fails, naming the wall, on a
copy of the tree with one crossing added."""
import shutil
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "check-walls.sh"
DIRS = ("gateway", "ctl", "sandbox", "include", "scripts")


def copy_tree(dest):
    for d in DIRS:
        shutil.copytree(ROOT / d, dest / d, ignore=shutil.ignore_patterns("node_modules"))
    return dest


def walls(tree):
    return subprocess.run(["sh", str(SCRIPT), str(tree)], capture_output=True, text=True,
                          timeout=120)


def add_line(path, after, line):
    """Inserts line after the first line starting with after."""
    text = path.read_text().split("\n")
    i = next(k for k, s in enumerate(text) if s.startswith(after))
    text.insert(i + 1, line)
    path.write_text("\n".join(text))


def test_the_tree_holds_its_walls(tmp_path):
    r = walls(copy_tree(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


CROSSINGS = {
    "http_libpq": ("gateway/http.c", '#include "airlock/http.h"', "#include <libpq-fe.h>",
                   "gateway/http.c includes a libpq header"),
    "http_libpq_call": ("gateway/http.c", '#include "airlock/http.h"',
                        'static void f(PGconn *c) { PQclear(PQexec(c, "SELECT 1")); }',
                        "gateway/http.c speaks libpq"),
    "http_sibling_libpq_call": ("gateway/http_worker.c", '#include "http_int.h"',
                                'static PGresult *f(PGconn *c) { return PQexec(c, "SELECT 1"); }',
                                "gateway/http_worker.c speaks libpq"),
    "ctl_statement_outside_the_runner": ("ctl/cmd_tenant.c", '#include "airlock/sql.h"',
                                         'static void f(PGconn *c) { PQclear(PQexec(c, "")); }',
                                         "ctl/cmd_tenant.c speaks libpq"),
    "sandbox_libpq_direct": ("sandbox/proxy.c", '#include "airlock/proxy.h"',
                             "#include <libpq-fe.h>", "sandbox/proxy.c includes a libpq header"),
    "sandbox_libpq_through_header": ("sandbox/seccomp.c", '#include "airlock/seccomp.h"',
                                     '#include "airlock/db.h"',
                                     "sandbox/seccomp.c reaches a libpq header through "
                                     "include/airlock/db.h"),
    "ctl_own_connection": ("ctl/cmd_tenant.c", "#include",
                           'static PGconn *c(void) { return PQconnectdb(""); }',
                           "ctl/cmd_tenant.c opens its own database connection"),
    "ctl_private_gateway_header": ("ctl/cmd_tool.c", "#include", '#include "tool_int.h"',
                                   "ctl/cmd_tool.c includes gateway/tool_int.h"),
    "module_cycle": ("ctl/devdb.c", '#include "airlock/devdb.h"', '#include "airlock/cli.h"',
                     "modules include each other in a loop:"),
    "header_cycle": ("include/airlock/pgjson.h", "#include <jansson.h>",
                     '#include "airlock/tool.h"', "headers include each other in a loop"),
}


@pytest.mark.parametrize("name", sorted(CROSSINGS))
def test_a_crossing_fails(tmp_path, name):
    path, after, line, message = CROSSINGS[name]
    tree = copy_tree(tmp_path)
    add_line(tree / path, after, line)
    r = walls(tree)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    if name == "module_cycle":
        assert " cli" in r.stderr and " devdb" in r.stderr, r.stderr


def test_a_basename_in_two_folders_fails(tmp_path):
    """The library archive keeps one member per basename: ctl/audit.c beside gateway/audit.c
    would make two audit.o in it."""
    tree = copy_tree(tmp_path)
    (tree / "ctl" / "audit.c").write_text("/* audit.c: a second one. */\n")
    r = walls(tree)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "two library files are named audit.c" in r.stderr, r.stderr
