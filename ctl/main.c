/* airlockctl: the operator's command line; dispatches a noun to its command. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/cli.h"
#include "airlock/version.h"

/* One line per command: its singular noun (the plural is accepted too), entry, summary. */
static const struct command {
	const char *noun;
	int (*run)(int, char **);
	const char *summary;
} commands[] = {
	{ "dev-db", cmd_devdb, "start|stop|status|url: the private development database" },
	{ "migrate", cmd_migrate, "apply the migrations in order, once each" },
	{ "tenant", cmd_tenant, "add|list|disable|enable: tenants and their roles" },
	{ "table", cmd_table, "adopt|list: tables given the tenant treatment" },
	{ "token", cmd_token, "mint|revoke|list|admin-key: task-scoped and approver tokens" },
	{ "call", cmd_call, "show|revert: a recorded call and its changes" },
	{ "plan", cmd_plan, "list|show|approve|reject|watch: plans held for an approver" },
	{ "tool", cmd_tool, "check|export: the tool catalog, checked as airlockd loads it" },
	{ "audit", cmd_audit, "seal|verify|export|replay|archive: the tamper-evident call record" },
	{ "doctor", cmd_doctor, "the containment self-check: roles, policies, keys, host" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f,
	    "usage: %s COMMAND [ARGS...]\n"
	    "       %s COMMAND --help\n"
	    "       %s --version\n\ncommands:\n",
	    CLI_PROG, CLI_PROG, CLI_PROG);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].noun, commands[i].summary);
	fprintf(f,
	    "\nThe database, for commands that need one: --db URL, else $AIRLOCK_DB, "
	    "else the\ndev-db's operator URL when there is a dev-db, else libpq's environment "
	    "(PGHOST...).\nExit status follows sysexits(3): 64 bad usage, 65 bad data, "
	    "69 database unavailable.\n");
}

/* Whether word names the command: its noun, or the noun with a plural 's'. */
static int
is_noun(const char *word, const char *noun)
{
	size_t n = strlen(noun);

	if (strncmp(word, noun, n) != 0)
		return 0;
	return word[n] == '\0' || (word[n] == 's' && word[n + 1] == '\0');
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("%s %s\n", CLI_PROG, AIRLOCK_VERSION);
		return EX_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			for (i = 0; i < NCOMMANDS; i++)
				if (is_noun(argv[2], commands[i].noun)) {
					char help[] = "--help";
					char *av[] = { argv[2], help, NULL };

					optind = 0;
					return commands[i].run(2, av);
				}
			fprintf(stderr, "%s: unknown command '%s'\n", CLI_PROG, argv[2]);
			return EX_USAGE;
		}
		usage(stdout);
		return EX_OK;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (is_noun(argv[1], commands[i].noun)) {
			optind = 0;
			return commands[i].run(argc - 1, argv + 1);
		}
	fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", CLI_PROG, argv[1], CLI_PROG);
	return EX_USAGE;
}
