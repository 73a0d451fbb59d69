/* test_metrics.c: gateway/metrics.c: label values escaped per the exposition format,
 * cumulative histogram buckets, and the table's bound on new label values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/gateway.h"
#include "airlock/metrics.h"
#include "tap.h"

static void
test_escape(void)
{
	char out[64];

	metrics_escape("plain_tool", out, sizeof(out));
	ok(strcmp(out, "plain_tool") == 0, "a plain value stays as it is");
	metrics_escape("a\"b\\c\nd", out, sizeof(out));
	ok(strcmp(out, "a\\\"b\\\\c\\nd") == 0, "quote, backslash and newline escaped: %s", out);
	metrics_escape("\\\\\\\\", out, 6);
	ok(strcmp(out, "\\\\\\\\") == 0, "truncation never splits an escape: %s", out);
}

static void
test_render(void)
{
	struct metrics_gauges g = { 0 };
	size_t len, i;
	char *text, name[32];
	int n_other = 0;

	metrics_call("tools/call", "we\"ird\nname", "ok", "", 0.003);
	metrics_call("tools/call", "we\"ird\nname", "ok", "", 0.2);
	metrics_call("tools/call", "we\"ird\nname", "refused", "tool_not_granted", 20);
	text = metrics_render(&g, &len);
	ok(text != NULL && strlen(text) == len, "renders");
	ok(strstr(text, "airlock_pool_workers{pool=\"db\"}") == NULL,
	    "no pool series for a pool that is not there");
	free(text);
	g.has_pool[0] = 1;
	g.pool[0][0] = 4, g.pool[0][1] = 1, g.pool[0][2] = 2;
	g.in_flight = 7, g.seal_lag = 1.5, g.is_seal_stalled = 1;
	text = metrics_render(&g, &len);
	ok(text != NULL && strstr(text, "airlock_pool_workers{pool=\"db\"} 4\n") != NULL &&
		strstr(text, "airlock_pool_busy{pool=\"db\"} 1\n") != NULL &&
		strstr(text, "airlock_pool_waiting{pool=\"db\"} 2\n") != NULL,
	    "a pool's workers, busy workers and waiting calls");
	ok(text != NULL && strstr(text, "airlock_db_pending 3\n") != NULL,
	    "pending is busy plus waiting");
	ok(text != NULL && strstr(text, "airlock_requests_in_flight 7\n") != NULL &&
		strstr(text, "airlock_seal_lag_seconds 1.500\n") != NULL &&
		strstr(text, "airlock_seal_stalled 1\n") != NULL,
	    "the caller's gauges as given");
	ok(strstr(text,
	       "airlock_calls_total{method=\"tools/call\",tool=\"we\\\"ird\\nname\","
	       "outcome=\"ok\",reason=\"\"} 2\n") != NULL,
	    "the tool label is escaped");
	ok(strstr(text,
	       "airlock_call_duration_seconds_bucket{method=\"tools/call\",tool=\"we\\\""
	       "ird\\nname\",le=\"0.005\"} 1\n") != NULL,
	    "one call under 5 ms");
	ok(strstr(text, "le=\"0.25\"} 2\n") != NULL, "buckets are cumulative");
	ok(strstr(text, "le=\"10\"} 2\n") != NULL && strstr(text, "le=\"+Inf\"} 3\n") != NULL,
	    "one call past the last bound counts only in +Inf");
	ok(strstr(text,
	       "airlock_call_duration_seconds_count{method=\"tools/call\",tool=\"we\\\""
	       "ird\\nname\"} 3\n") != NULL,
	    "count without a trailing comma in the labels");
	free(text);

	/* Many tools: past three quarters of the table they share tool="_other". */
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "t%zu", i);
		metrics_call("tools/call", name, "ok", "", 0.001);
	}
	text = metrics_render(&g, &len);
	ok(text != NULL, "renders a full table");
	n_other = text != NULL && strstr(text, "tool=\"_other\",outcome=\"ok\"") != NULL;
	ok(n_other, "new tools past the bound count as _other");
	free(text);
}

int
main(void)
{
	test_escape();
	test_render();
	return tap_done();
}
