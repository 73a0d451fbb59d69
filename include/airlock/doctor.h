/* doctor.h: the self-check airlockctl doctor prints and airlockd runs before it serves. */
/* A struct doc_report owns its rows until doc_report_free; connections are borrowed. */
#ifndef AIRLOCK_DOCTOR_H
#define AIRLOCK_DOCTOR_H

#include <stddef.h>

#include <libpq-fe.h>

/* A check's outcome; DOC_SKIP when it was not asked for (no --admin-key-file). */
enum doc_status { DOC_OK, DOC_SKIP, DOC_WARN, DOC_FAIL };

struct doc_row {
	const char *check; /* static: the check's name */
	enum doc_status status;
	char detail[512]; /* the object at fault, or what was checked */
};

/* The rows in the order the checks ran. */
struct doc_report {
	struct doc_row *rows;
	size_t n, cap;
	int has_failure;
	int has_db_error; /* a query failed: the database checks are incomplete */
};

void doc_report_init(struct doc_report *r);
void doc_report_free(struct doc_report *r);

/* The name of a status as the table shows it: ok, skip, warn, FAIL. */
const char *doc_status_name(enum doc_status st);

/*
 * The database checks against role (the gateway's login role; NULL: the session's
 * current_user): the role's attributes and the roles it can become, its hold on tenant
 * tables, row-level security and policies, views, SECURITY DEFINER functions and keys.
 * Adds one row per fault, or one ok row per check.  Returns 0, or -1 when a query failed
 * (a FAIL row names it and has_db_error is set).
 */
int doc_check_db(struct doc_report *r, PGconn *conn, const char *role);

/*
 * Every running airlockd (by /proc/PID/comm) whose arguments hold a password; only the
 * process only_pid when not 0.
 */
void doc_check_argv(struct doc_report *r, int only_pid);

/* The admin credential file: it must be a regular file no one but its owner may read. */
void doc_check_key_file(struct doc_report *r, const char *path);

/*
 * What code tools need: bwrap (at path) not setuid, user namespaces for an unprivileged
 * user, seccomp filters.  A missing one is a failure when is_needed (the catalog has code
 * tools), else a warning.
 */
void doc_check_sandbox(struct doc_report *r, const char *bwrap, int is_needed);

/*
 * Whether the catalog in dir holds a code tool (a manifest with "kind": "code"); sets
 * *has_gvisor (may be NULL) when one of them asks for "isolation": "gvisor".
 */
int doc_catalog_needs(const char *dir, int *has_gvisor);

/*
 * Whether the gVisor level can run here (runsc at runsc, NULL for /usr/bin/runsc, starts a
 * sandbox): a failure when is_needed (a gvisor tool in the catalog), else a warning.
 */
void doc_check_gvisor(struct doc_report *r, const char *runsc, int is_needed);

/*
 * airlockd's start-up gate: the database checks as the connected role.  Returns 0 when
 * they pass; else -1 with every fault, joined by "; ", in err.
 */
int doc_gate(PGconn *conn, char *err, size_t len) __attribute__((warn_unused_result));

#endif
