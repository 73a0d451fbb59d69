#!/bin/sh
# check-walls.sh: fails when code crosses a wall of the layout (docs/ARCHITECTURE.md, "Walls").
#
# Usage: scripts/check-walls.sh [TREE]  (TREE defaults to the checkout holding this script).
# Prints each crossing and exits 1; exits 0 when every wall holds.  Plain sh, grep, awk and
# tsort: it reads #include lines and calls, so it runs before anything is built; the one
# check of a built program (airlock-sandbox's libraries) runs only when the program exists.
set -u
root=${1:-"$(dirname "$0")/.."}
cd "$root" || exit 2
fail=0
crossed() { echo "check-walls: $*" >&2; fail=1; }

# A libpq header: libpq-fe.h, libpq-events.h, libpq/..., postgres_ext.h, pg_config*.h.
LIBPQ='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](libpq-fe\.h|libpq-events\.h|libpq/|postgres_ext\.h|pg_config)'

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
files=$(ls gateway/*.c gateway/*.h ctl/*.c ctl/*.h sandbox/*.c sandbox/*.h include/airlock/*.h \
    2>/dev/null)
# The include graph: "FILE<TAB>INCLUDED" for every #include "..." that names a file of the tree
# (airlock/x.h is include/airlock/x.h; a bare name is a private header beside FILE).
printf '%s\n' $files > "$tmp/files"
awk -v list="$tmp/files" '
	BEGIN { while ((getline f < list) > 0) known[f] = 1 }
	/^[ \t]*#[ \t]*include[ \t]*"/ {
		h = $0; sub(/^[^"]*"/, "", h); sub(/".*/, "", h)
		dir = FILENAME; sub(/\/[^\/]*$/, "", dir)
		p = h ~ /^airlock\// ? "include/" h : dir "/" h
		if (p in known) print FILENAME "\t" p
	}' $files > "$tmp/edges"
# Files that include a libpq header themselves.
grep -El "$LIBPQ" $files > "$tmp/libpq" || true

# 1. The HTTP layer speaks HTTP: gateway/http.c and its siblings (http_*.c, http_int.h)
# include no libpq header of their own, call no libpq function and name no libpq type:
# /readyz asks db_ping(), a departed client's statement is cancelled through db_cancel_*
# (gateway/db.c).  (They still reach libpq.h through airlock headers that declare
# PGconn-taking functions; the wall is on what they themselves name.)  Comment lines
# (starting with / * or *) are not read.
for f in gateway/http.c gateway/http_*.c gateway/http_*.h; do
	[ -f "$f" ] || continue
	if grep -En "$LIBPQ" "$f" >/dev/null; then
		crossed "$f includes a libpq header: $(grep -En "$LIBPQ" "$f" | head -1)"
	fi
	grep -nE '(^|[^A-Za-z0-9_])(PQ[A-Za-z]+[[:space:]]*\(|PG(conn|result|cancel|notify)([^A-Za-z0-9_]|$))' \
	    "$f" | grep -vE '^[0-9]+:[[:space:]]*(/\*|\*)' > "$tmp/pq" || true
	while read -r line; do
		crossed "$f speaks libpq (ask gateway/db.c): $line"
	done < "$tmp/pq"
done

# 2. The sandbox never meets the database: no file under sandbox/ includes a libpq header,
# directly or through the airlock headers it includes, and airlock-sandbox, when built,
# needs no libpq.
awk -F '\t' -v pq="$tmp/libpq" '
	BEGIN { while ((getline f < pq) > 0) has_pq[f] = 1 }
	{ out[$1] = out[$1] " " $2; if ($1 ~ /^sandbox\/.*\.c$/) roots[$1] = 1 }
	END {
		for (r in roots) {
			delete seen; n = 0; q[++n] = r; seen[r] = 1
			for (i = 1; i <= n; i++) {
				if (q[i] in has_pq) print r " reaches a libpq header through " q[i]
				k = split(out[q[i]], nx, " ")
				for (j = 1; j <= k; j++) if (!(nx[j] in seen)) { seen[nx[j]] = 1; q[++n] = nx[j] }
			}
		}
	}' "$tmp/edges" > "$tmp/sandbox"
for f in sandbox/*.c; do grep -q "^$f\$" "$tmp/libpq" && echo "$f includes a libpq header"; done \
    >> "$tmp/sandbox"
while read -r line; do crossed "$line"; done < "$tmp/sandbox"
# (The ASan build links by the same rule; an old one left in build/asan proves nothing.)
for b in build/airlock-sandbox; do
	[ -x "$b" ] || continue
	if readelf -d "$b" 2>/dev/null | grep -q 'NEEDED.*libpq'; then
		crossed "$b is linked with libpq"
	fi
	if nm -u "$b" 2>/dev/null | grep -q ' PQ'; then
		crossed "$b calls libpq: $(nm -u "$b" | grep ' PQ' | head -3 | tr -s ' \n' ' ')"
	fi
done

# 3. airlockctl reaches the database through the shared modules: it opens connections only
# in ctl/cli.c (cli_connect, the one database rule) and, before any login role exists, the
# dev-db's bootstrap connection (ctl/cmd_devdb.c); every statement goes through the one
# runner, ctl/sql.c (sql_query, sql_exec, ..., and sql_fail's one exit-code mapping).
# No other ctl/ file calls a libpq function (comment lines are not read).
for f in ctl/*.c; do
	case $f in ctl/cli.c|ctl/cmd_devdb.c) continue ;; esac
	if grep -n 'PQconnect[A-Za-z]*[[:space:]]*(' "$f" >/dev/null; then
		crossed "$f opens its own database connection (use cli_connect): " \
		    "$(grep -n 'PQconnect[A-Za-z]*[[:space:]]*(' "$f" | head -1)"
	fi
	[ "$f" = ctl/sql.c ] && continue
	grep -nE '(^|[^A-Za-z0-9_])PQ[A-Za-z]+[[:space:]]*\(' "$f" |
	    grep -vE '^[0-9]+:[[:space:]]*(/\*|\*)' > "$tmp/pq" || true
	while read -r line; do
		crossed "$f speaks libpq (go through ctl/sql.c): $line"
	done < "$tmp/pq"
done
# Every library object has its own basename: the archive (build/libairlock.a) keeps
# members by basename, so gateway/x.c and ctl/x.c would make two x.o in it.
for f in $(ls gateway/*.c ctl/*.c sandbox/*.c 2>/dev/null | grep -v '/main\.c$'); do
	basename "$f"
done | sort | uniq -d > "$tmp/dups"
while read -r b; do
	crossed "two library files are named $b: $(ls */"$b" | tr '\n' ' ')"
done < "$tmp/dups"
# No ctl/ file includes the catalog's private header, nor gateway/ a ctl/ one.
for f in ctl/*.c ctl/*.h; do
	if grep -q '#[[:space:]]*include[[:space:]]*"tool_int\.h"' "$f"; then
		crossed "$f includes gateway/tool_int.h, the tool catalog's own"
	fi
done
for f in gateway/*.c gateway/*.h; do
	if grep -q '#[[:space:]]*include[[:space:]]*"\(cmd_\|airlock/cli\.h\|airlock/devdb\.h\)' "$f"; then
		crossed "$f includes a header of airlockctl"
	fi
done

# 4. No include cycle.  Headers: none includes, through others, itself.  Modules: a module
# is a header and the .c files that implement it (x.h: x.c and its siblings x_*.c); module
# A uses B when a file of A includes B's header.  Two modules that use each other are a
# cycle: neither can be read, built or tested without the other.
headers=$(printf '%s\n' $files | grep '\.h$')
awk -F '\t' '$2 ~ /\.h$/ && $1 ~ /\.h$/ { print $1, $2 }' "$tmp/edges" > "$tmp/hedges"
for h in $headers; do echo "$h $h"; done >> "$tmp/hedges"
if ! tsort "$tmp/hedges" >/dev/null 2>"$tmp/tsort"; then
	crossed "headers include each other in a loop:$(grep -v 'input contains a loop' \
	    "$tmp/tsort" | sed 's/^tsort: / /' | tr -d '\n')"
fi
# Known cycles, each a group of modules that use one another today.  A cycle may shrink or
# go; one that grows, or a new one, fails.  gvisor, proxy, sandbox: one program's parts,
# split by role.
allowed=$(cat <<'LIST'
gvisor proxy sandbox
LIST
)
awk -F '\t' -v list="$tmp/files" -v allowed="$allowed" '
	# The module of a file: the longest prefix of its name (cut at "_") that names a
	# header other than itself, else its own name: tool_sql.c and tool_int.h are tool.
	function module_of(f,    s, d, p) {
		s = f; sub(/^.*\//, "", s); sub(/\.[ch]$/, "", s)
		d = f; sub(/\/[^\/]*$/, "", d)
		for (p = s; ; ) {
			if ((("include/airlock/" p ".h") in known && ("include/airlock/" p ".h") != f) ||
			    ((d "/" p ".h") in known && (d "/" p ".h") != f))
				return p
			if (p !~ /_/)
				return s
			sub(/_[^_]*$/, "", p)
		}
	}
	BEGIN { while ((getline f < list) > 0) known[f] = 1 }
	{
		a = module_of($1); b = module_of($2)
		if (a != b) { n[a] = 1; n[b] = 1; r[a SUBSEP b] = 1 }
	}
	END {
		for (k in n) for (i in n) if ((i SUBSEP k) in r) for (j in n)
			if ((k SUBSEP j) in r) r[i SUBSEP j] = 1
		ng = split(allowed, groups, "\n")
		for (i in n) {
			if ((i in done) || !((i SUBSEP i) in r)) continue
			delete m
			for (j in n) if ((i SUBSEP j) in r && (j SUBSEP i) in r) { done[j] = 1; m[j] = 1 }
			ok = 0
			for (g = 1; g <= ng; g++) {
				delete in_g; k = split(groups[g], mem, " ")
				for (x = 1; x <= k; x++) in_g[mem[x]] = 1
				all = 1
				for (j in m) if (!(j in in_g)) all = 0
				if (all) ok = 1
			}
			if (!ok) {
				scc = ""
				for (j in m) scc = scc " " j
				print "modules include each other in a loop:" scc
			}
		}
	}' "$tmp/edges" > "$tmp/cycles"
while read -r line; do crossed "$line"; done < "$tmp/cycles"

# 5. Result columns are read by name (db_value, db_text, db_is_null in gateway/db.c, for
# airlockd and airlockctl alike), never by a column number written in the
# code: a reordered SELECT list would shift what such a read gets (and a 0 given to a
# by-name accessor is a NULL name).  A loop over every column of a tool's own statement
# (its rows as JSON) reads by index, not by a number.
for f in gateway/*.c ctl/*.c; do
	grep -nE '(^|[^A-Za-z0-9_])(PQget(value|isnull|length)|db_(value|text|is_null))[[:space:]]*\([^,]+,[^,]+,[[:space:]]*[0-9]+[[:space:]]*\)' \
	    "$f" | grep -vE '^[0-9]+:[[:space:]]*(/\*|\*([[:space:]/]|$))' > "$tmp/colnum" || true
	while read -r line; do
		crossed "$f reads a result column by number (read it by name): $line"
	done < "$tmp/colnum"
done

exit $fail
