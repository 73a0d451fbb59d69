/* conform.h: a strict checker for the JSON Schema subset of the gateway's output schemas. */
#ifndef AIRLOCK_CONFORM_H
#define AIRLOCK_CONFORM_H

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

/*
 * The schemas are checked as a client's validator with formats would apply them (Ajv with
 * ajv-formats, as the MCP SDK does): true and false, type, enum, pattern, format (date-time
 * and date as RFC 3339 says, uuid), anyOf, required, properties, items, description.  An
 * unknown keyword or format fails, as in a strict validator.  conforms() returns 1 when v
 * conforms, else 0 with the reason in why.
 */
static char why[512];

static int fail_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail_why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 0;
}

static int
is_type(json_t *v, const char *type)
{
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(type, "null") == 0)
		return json_is_null(v);
	if (strcmp(type, "object") == 0)
		return json_is_object(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	return -1;
}

static int
digits(const char *s, int n, int *out)
{
	int i;

	*out = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		*out = *out * 10 + (s[i] - '0');
	}
	return 1;
}

/* RFC 3339 full-date at s; returns the characters used, or 0. */
static int
full_date(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return 0;
	return 10;
}

/* RFC 3339 date-time: full-date "T" time-hour ":" minute ":" second [frac] offset. */
static int
is_date_time(const char *s)
{
	int h, mi, sec, oh, om, n = full_date(s);

	if (n == 0 || (s[n] != 'T' && s[n] != 't'))
		return 0;
	s += n + 1;
	if (!digits(s, 2, &h) || s[2] != ':' || !digits(s + 3, 2, &mi) || s[5] != ':' ||
	    !digits(s + 6, 2, &sec) || h > 23 || mi > 59 || sec > 60)
		return 0;
	s += 8;
	if (*s == '.') {
		if (!isdigit((unsigned char)s[1]))
			return 0;
		for (s++; isdigit((unsigned char)*s); s++)
			;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return 1;
	return (*s == '+' || *s == '-') && digits(s + 1, 2, &oh) && s[3] == ':' &&
	    digits(s + 4, 2, &om) && oh <= 23 && om <= 59 && s[6] == '\0';
}

static int
is_uuid(const char *s)
{
	int i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[36] == '\0';
}

static int
conforms(json_t *schema, json_t *v, const char *path)
{
	const char *k, *str;
	json_t *kw, *x, *sub;
	size_t i;
	char sub_path[256];
	int any;
	regex_t re;

	if (json_is_boolean(schema))
		return json_is_true(schema) ? 1 : fail_why("%s: the schema is false", path);
	if (!json_is_object(schema))
		return fail_why("%s: the schema is not an object", path);
	json_object_foreach (schema, k, kw) {
		if (strcmp(k, "description") == 0 || strcmp(k, "title") == 0)
			continue;
		if (strcmp(k, "type") == 0) {
			any = 0;
			if (json_is_string(kw))
				any = is_type(v, json_string_value(kw));
			else
				json_array_foreach (kw, i, x)
					if (is_type(v, json_string_value(x)) == 1)
						any = 1;
			if (any != 1)
				return fail_why("%s: not of the type %s", path,
				    json_is_string(kw) ? json_string_value(kw) : "listed");
		} else if (strcmp(k, "enum") == 0) {
			any = 0;
			json_array_foreach (kw, i, x)
				if (json_equal(x, v))
					any = 1;
			if (!any)
				return fail_why("%s: not in the enum", path);
		} else if (strcmp(k, "pattern") == 0) {
			if (!json_is_string(v))
				continue;
			if (regcomp(&re, json_string_value(kw), REG_EXTENDED | REG_NOSUB) != 0)
				return fail_why("%s: bad pattern %s", path, json_string_value(kw));
			any = regexec(&re, json_string_value(v), 0, NULL, 0) == 0;
			regfree(&re);
			if (!any)
				return fail_why("%s: does not match %s", path,
				    json_string_value(kw));
		} else if (strcmp(k, "format") == 0) {
			if (!json_is_string(v))
				continue;
			str = json_string_value(v);
			if (strcmp(json_string_value(kw), "date-time") == 0)
				any = is_date_time(str);
			else if (strcmp(json_string_value(kw), "date") == 0)
				any = full_date(str) == 10 && str[10] == '\0';
			else if (strcmp(json_string_value(kw), "uuid") == 0)
				any = is_uuid(str);
			else
				return fail_why("%s: unknown format %s", path,
				    json_string_value(kw));
			if (!any)
				return fail_why("%s: not a %s", path, json_string_value(kw));
		} else if (strcmp(k, "anyOf") == 0) {
			any = 0;
			json_array_foreach (kw, i, sub)
				if (conforms(sub, v, path))
					any = 1;
			if (!any)
				return fail_why("%s: matches no branch of anyOf", path);
		} else if (strcmp(k, "required") == 0) {
			if (!json_is_object(v))
				continue;
			json_array_foreach (kw, i, x)
				if (json_object_get(v, json_string_value(x)) == NULL)
					return fail_why("%s: missing %s", path,
					    json_string_value(x));
		} else if (strcmp(k, "properties") == 0) {
			if (!json_is_object(v))
				continue;
			json_object_foreach (kw, str, sub) {
				if ((x = json_object_get(v, str)) == NULL)
					continue;
				snprintf(sub_path, sizeof(sub_path), "%s.%s", path, str);
				if (!conforms(sub, x, sub_path))
					return 0;
			}
		} else if (strcmp(k, "items") == 0) {
			if (!json_is_array(v))
				continue;
			json_array_foreach (v, i, x) {
				snprintf(sub_path, sizeof(sub_path), "%s[%zu]", path, i);
				if (!conforms(kw, x, sub_path))
					return 0;
			}
		} else
			return fail_why("%s: unknown keyword %s", path, k);
	}
	return 1;
}

#endif
