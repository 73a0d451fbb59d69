/* tool_schema.c: the arguments' JSON-Schema subset, and the output schemas tools/list shows. */
/*
 * The arguments schema: at the top, "type": "object",
 * "properties", "required" (names of properties), "additionalProperties": false (present and
 * false) and an optional "description".  Property names are [a-z][a-z0-9_]{0,63}.  Each
 * property has "type" (string, integer, number, boolean, object or array, or an array of
 * those plus "null") and may have enum, minimum, maximum (numbers), minLength, maxLength
 * (in characters), pattern (strings), description, title, default (applied when the argument
 * is absent; it must pass the property's own rules) and "sensitive": true (the audit log
 * keeps only a digest).  pattern is a POSIX extended regular expression (regcomp), searched
 * unanchored as JSON Schema does: write ^...$ to match the whole value; it matches bytes, so
 * use ASCII patterns.  object and array properties take no other keyword: the value reaches
 * the program as JSON text.  A null value passes whenever the type allows "null", enum or
 * not.  Any other keyword is refused, naming it.
 */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/log.h"
#include "airlock/pgjson.h"
#include "airlock/tool.h"
#include "tool_int.h"

static const struct {
	const char *name;
	const char *phrase;
	int bit;
} type_table[] = {
	{ "string", "a string", T_STRING },
	{ "integer", "an integer", T_INTEGER },
	{ "number", "a number", T_NUMBER },
	{ "boolean", "a boolean", T_BOOLEAN },
	{ "object", "an object", T_OBJECT },
	{ "array", "an array", T_ARRAY },
	{ "null", "null", T_NULL },
};
#define NTYPES (sizeof(type_table) / sizeof(type_table[0]))

static const char *const top_schema_keys[] = { "type", "properties", "required",
	"additionalProperties", "description", NULL };
static const char *const property_keys[] = { "type", "enum", "minimum", "maximum", "minLength",
	"maxLength", "pattern", "description", "title", "default", "sensitive", NULL };

/* Schema checks. */

int
tool_schema_type_bits(json_t *prop)
{
	json_t *type = json_object_get(prop, "type"), *v;
	size_t i, k, n = json_is_array(type) ? json_array_size(type) : 1;
	int bits = 0;

	for (i = 0; i < n; i++) {
		v = json_is_array(type) ? json_array_get(type, i) : type;
		for (k = 0; k < NTYPES; k++)
			if (json_is_string(v) &&
			    strcmp(json_string_value(v), type_table[k].name) == 0)
				bits |= type_table[k].bit;
	}
	return bits;
}

/* "an integer or null" for the type bits. */
static void
type_phrase(int bits, char *out, size_t len)
{
	size_t k;

	out[0] = '\0';
	for (k = 0; k < NTYPES; k++)
		if (bits & type_table[k].bit) {
			if (out[0] != '\0')
				strlcat(out, " or ", len);
			strlcat(out, type_table[k].phrase, len);
		}
}

/* Number of characters in a UTF-8 string (jansson guarantees valid UTF-8). */
static size_t
utf8_length(const char *s, size_t n)
{
	size_t i, chars = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			chars++;
	return chars;
}

/* Compares two JSON numbers: <0, 0, >0. */
static int
num_cmp(json_t *a, json_t *b)
{
	double x, y;

	if (json_is_integer(a) && json_is_integer(b))
		return (json_integer_value(a) > json_integer_value(b)) -
		    (json_integer_value(a) < json_integer_value(b));
	x = json_number_value(a);
	y = json_number_value(b);
	return (x > y) - (x < y);
}

/*
 * Checks value (borrowed) against one checked property.  Returns a new reference to the
 * value as the tool receives it (an integral real for an integer property becomes an
 * integer), or NULL with msg set to "argument 'NAME' must ...".
 */
static json_t *
check_value(const char *name, json_t *prop, json_t *value, char *msg, size_t msglen)
{
	json_t *enm, *e, *bound;
	json_t *v = NULL;
	const char *s, *pattern;
	char phrase[128], list[512], *dump;
	size_t i, slen, chars;
	json_int_t lim;
	regex_t re;
	double d;
	int bits = tool_schema_type_bits(prop), rc;

	if (json_is_null(value)) {
		if (bits & T_NULL)
			return json_null();
		goto bad_type;
	}
	if (json_is_string(value) && (bits & T_STRING))
		v = json_incref(value);
	else if (json_is_integer(value) && (bits & (T_INTEGER | T_NUMBER)))
		v = json_incref(value);
	else if (json_is_real(value) && (bits & T_NUMBER))
		v = json_incref(value);
	else if (json_is_real(value) && (bits & T_INTEGER)) {
		d = json_real_value(value);
		if (d != floor(d) || fabs(d) > 9007199254740992.0)
			goto bad_type;
		v = json_integer((json_int_t)d);
	} else if (json_is_boolean(value) && (bits & T_BOOLEAN))
		v = json_incref(value);
	else if (json_is_object(value) && (bits & T_OBJECT))
		v = json_incref(value);
	else if (json_is_array(value) && (bits & T_ARRAY))
		v = json_incref(value);
	else
		goto bad_type;
	if (v == NULL) {
		log_seterr(msg, msglen, "out of memory");
		return NULL;
	}

	if ((enm = json_object_get(prop, "enum")) != NULL) {
		json_array_foreach (enm, i, e) {
			if (json_equal(e, v))
				break;
		}
		if (i == json_array_size(enm)) {
			list[0] = '\0';
			json_array_foreach (enm, i, e) {
				if (i > 0)
					strlcat(list, ", ", sizeof(list));
				if (json_is_string(e))
					strlcat(list, json_string_value(e), sizeof(list));
				else if ((dump = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY)) !=
				    NULL) {
					strlcat(list, dump, sizeof(list));
					free(dump);
				}
			}
			log_seterr(msg, msglen, "argument '%s' must be one of: %s", name, list);
			goto fail;
		}
	}
	if (json_is_string(v)) {
		s = json_string_value(v);
		slen = json_string_length(v);
		if (memchr(s, '\0', slen) != NULL) {
			log_seterr(msg, msglen, "argument '%s' must not contain NUL characters",
			    name);
			goto fail;
		}
		chars = utf8_length(s, slen);
		if ((bound = json_object_get(prop, "minLength")) != NULL &&
		    (json_int_t)chars < (lim = json_integer_value(bound))) {
			log_seterr(msg, msglen,
			    "argument '%s' must be at least %lld character%s long", name,
			    (long long)lim, lim == 1 ? "" : "s");
			goto fail;
		}
		if ((bound = json_object_get(prop, "maxLength")) != NULL &&
		    (json_int_t)chars > (lim = json_integer_value(bound))) {
			log_seterr(msg, msglen,
			    "argument '%s' must be at most %lld character%s long", name,
			    (long long)lim, lim == 1 ? "" : "s");
			goto fail;
		}
		if ((pattern = json_string_value(json_object_get(prop, "pattern"))) != NULL) {
			if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
				log_seterr(msg, msglen,
				    "argument '%s': its pattern does not compile", name);
				goto fail;
			}
			rc = regexec(&re, s, 0, NULL, 0);
			regfree(&re);
			if (rc != 0) {
				log_seterr(msg, msglen, "argument '%s' must match the pattern %s",
				    name, pattern);
				goto fail;
			}
		}
	}
	if (json_is_number(v)) {
		if ((bound = json_object_get(prop, "minimum")) != NULL && num_cmp(v, bound) < 0) {
			dump = json_dumps(bound, JSON_ENCODE_ANY);
			log_seterr(msg, msglen, "argument '%s' must be at least %s", name,
			    dump ? dump : "its minimum");
			free(dump);
			goto fail;
		}
		if ((bound = json_object_get(prop, "maximum")) != NULL && num_cmp(v, bound) > 0) {
			dump = json_dumps(bound, JSON_ENCODE_ANY);
			log_seterr(msg, msglen, "argument '%s' must be at most %s", name,
			    dump ? dump : "its maximum");
			free(dump);
			goto fail;
		}
	}
	return v;
bad_type:
	type_phrase(bits, phrase, sizeof(phrase));
	log_seterr(msg, msglen, "argument '%s' must be %s", name, phrase);
fail:
	json_decref(v);
	return NULL;
}

/* Checks one property's keywords; err gets "property 'NAME': fault". */
static int
check_property(const char *name, json_t *prop, char *err, size_t errlen)
{
	json_t *type, *v, *e, *checked;
	const char *key;
	char msg[512], rerr[256];
	size_t i, j, k;
	regex_t re;
	int bits = 0, rc;

	if (!is_tool_name(name)) {
		log_seterr(err, errlen, "property name '%s' must match [a-z][a-z0-9_]{0,63}", name);
		return -1;
	}
	if (!json_is_object(prop)) {
		log_seterr(err, errlen, "property '%s' must be an object", name);
		return -1;
	}
	json_object_foreach (prop, key, v) {
		if (!in_list(key, property_keys)) {
			log_seterr(err, errlen, "property '%s': unknown keyword '%s'", name, key);
			return -1;
		}
	}
	if ((type = json_object_get(prop, "type")) == NULL) {
		log_seterr(err, errlen, "property '%s': needs a type", name);
		return -1;
	}
	if (json_is_string(type) || (json_is_array(type) && json_array_size(type) > 0)) {
		for (i = 0; i < (json_is_string(type) ? 1 : json_array_size(type)); i++) {
			v = json_is_string(type) ? type : json_array_get(type, i);
			for (k = 0; k < NTYPES; k++)
				if (json_is_string(v) &&
				    strcmp(json_string_value(v), type_table[k].name) == 0)
					break;
			if (k == NTYPES) {
				log_seterr(err, errlen,
				    "property '%s': keyword 'type' must name string, "
				    "integer, number, boolean, object, array or null",
				    name);
				return -1;
			}
			if (bits & type_table[k].bit) {
				log_seterr(err, errlen,
				    "property '%s': keyword 'type' names %s twice", name,
				    type_table[k].name);
				return -1;
			}
			bits |= type_table[k].bit;
		}
	} else {
		log_seterr(err, errlen,
		    "property '%s': keyword 'type' must be a string or a "
		    "non-empty array of strings",
		    name);
		return -1;
	}
	if (bits == T_NULL) {
		log_seterr(err, errlen,
		    "property '%s': keyword 'type' must allow a value other than "
		    "null",
		    name);
		return -1;
	}
	if ((bits & (T_OBJECT | T_ARRAY)) != 0) {
		json_object_foreach (prop, key, v) {
			if (!in_list(key,
				(const char *const[]){ "type", "description", "title", "default",
				    "sensitive", NULL })) {
				log_seterr(err, errlen,
				    "property '%s': keyword '%s' does not apply to "
				    "object and array types (they take no nested keywords)",
				    name, key);
				return -1;
			}
		}
	}
	for (i = 0; i < 2; i++) {
		key = i == 0 ? "minimum" : "maximum";
		if ((v = json_object_get(prop, key)) == NULL)
			continue;
		if (!json_is_number(v)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' must be a number",
			    name, key);
			return -1;
		}
		if (!(bits & (T_INTEGER | T_NUMBER))) {
			log_seterr(err, errlen,
			    "property '%s': keyword '%s' applies to integer and "
			    "number types only",
			    name, key);
			return -1;
		}
	}
	if (json_object_get(prop, "minimum") != NULL && json_object_get(prop, "maximum") != NULL &&
	    num_cmp(json_object_get(prop, "minimum"), json_object_get(prop, "maximum")) > 0) {
		log_seterr(err, errlen, "property '%s': minimum is above maximum", name);
		return -1;
	}
	for (i = 0; i < 3; i++) {
		key = i == 0 ? "minLength" : i == 1 ? "maxLength" : "pattern";
		if ((v = json_object_get(prop, key)) == NULL)
			continue;
		if (i < 2 && (!json_is_integer(v) || json_integer_value(v) < 0)) {
			log_seterr(err, errlen,
			    "property '%s': keyword '%s' must be a non-negative "
			    "integer",
			    name, key);
			return -1;
		}
		if (i == 2 && !json_is_string(v)) {
			log_seterr(err, errlen, "property '%s': keyword 'pattern' must be a string",
			    name);
			return -1;
		}
		if (!(bits & T_STRING)) {
			log_seterr(err, errlen,
			    "property '%s': keyword '%s' applies to string types "
			    "only",
			    name, key);
			return -1;
		}
		if (i == 2) {
			if ((rc = regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB)) !=
			    0) {
				regerror(rc, &re, rerr, sizeof(rerr));
				log_seterr(err, errlen,
				    "property '%s': pattern does not compile as a "
				    "POSIX extended regular expression: %s",
				    name, rerr);
				return -1;
			}
			regfree(&re);
		}
	}
	if (json_object_get(prop, "minLength") != NULL &&
	    json_object_get(prop, "maxLength") != NULL &&
	    json_integer_value(json_object_get(prop, "minLength")) >
		json_integer_value(json_object_get(prop, "maxLength"))) {
		log_seterr(err, errlen, "property '%s': minLength is above maxLength", name);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		key = i == 0 ? "description" : "title";
		if ((v = json_object_get(prop, key)) != NULL && !json_is_string(v)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' must be a string",
			    name, key);
			return -1;
		}
	}
	if ((v = json_object_get(prop, "sensitive")) != NULL && !json_is_boolean(v)) {
		log_seterr(err, errlen, "property '%s': keyword 'sensitive' must be true or false",
		    name);
		return -1;
	}
	if ((v = json_object_get(prop, "enum")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) == 0) {
			log_seterr(err, errlen,
			    "property '%s': keyword 'enum' must be a non-empty "
			    "array",
			    name);
			return -1;
		}
		json_array_foreach (v, i, e) {
			if (json_is_object(e) || json_is_array(e)) {
				log_seterr(err, errlen,
				    "property '%s': enum values must be strings, "
				    "numbers, booleans or null",
				    name);
				return -1;
			}
			for (j = 0; j < i; j++)
				if (json_equal(e, json_array_get(v, j))) {
					log_seterr(err, errlen,
					    "property '%s': enum lists a value twice", name);
					return -1;
				}
		}
		/* Every listed value must pass the type and the other keywords. */
		json_array_foreach (v, i, e) {
			json_t *plain = json_deep_copy(prop);

			if (plain == NULL) {
				log_seterr(err, errlen, "out of memory");
				return -1;
			}
			json_object_del(plain, "enum");
			checked = check_value(name, plain, e, msg, sizeof(msg));
			json_decref(plain);
			if (checked == NULL) {
				log_seterr(err, errlen, "property '%s': enum value %zu: %s", name,
				    i + 1, msg);
				return -1;
			}
			json_decref(checked);
		}
	}
	if ((v = json_object_get(prop, "default")) != NULL) {
		if ((checked = check_value(name, prop, v, msg, sizeof(msg))) == NULL) {
			log_seterr(err, errlen,
			    "property '%s': default does not pass its own rules: %s", name, msg);
			return -1;
		}
		json_decref(checked);
	}
	return 0;
}

/* Checks the arguments schema; err gets the fault, without the file. */
static int
check_schema(json_t *schema, char *err, size_t errlen)
{
	json_t *props, *req, *v;
	const char *key;
	size_t i, j;

	if (!json_is_object(schema)) {
		log_seterr(err, errlen, "arguments must be a JSON Schema object");
		return -1;
	}
	json_object_foreach (schema, key, v) {
		if (!in_list(key, top_schema_keys)) {
			log_seterr(err, errlen,
			    "arguments: unknown keyword '%s' (known: type, "
			    "properties, required, additionalProperties, description)",
			    key);
			return -1;
		}
	}
	if (!json_is_string(json_object_get(schema, "type")) ||
	    strcmp(json_string_value(json_object_get(schema, "type")), "object") != 0) {
		log_seterr(err, errlen, "arguments: type must be \"object\"");
		return -1;
	}
	if (!json_is_false(json_object_get(schema, "additionalProperties"))) {
		log_seterr(err, errlen,
		    "arguments: additionalProperties must be present and false");
		return -1;
	}
	if ((v = json_object_get(schema, "description")) != NULL && !json_is_string(v)) {
		log_seterr(err, errlen, "arguments: description must be a string");
		return -1;
	}
	props = json_object_get(schema, "properties");
	if (props != NULL && !json_is_object(props)) {
		log_seterr(err, errlen, "arguments: properties must be an object");
		return -1;
	}
	json_object_foreach (props, key, v) {
		/* The call options' argument names are the gateway's (tool_listed_schema). */
		if (strncmp(key, TOOL_OPTION_PREFIX, strlen(TOOL_OPTION_PREFIX)) == 0) {
			log_seterr(err, errlen,
			    "arguments: property '%s': names starting with '%s' "
			    "are the gateway's call options",
			    key, TOOL_OPTION_PREFIX);
			return -1;
		}
		if (check_property(key, v, err, errlen) == -1) {
			char fault[1024];

			strlcpy(fault, err, sizeof(fault));
			log_seterr(err, errlen, "arguments: %s", fault);
			return -1;
		}
	}
	if ((req = json_object_get(schema, "required")) != NULL) {
		if (!json_is_array(req)) {
			log_seterr(err, errlen,
			    "arguments: required must be an array of property "
			    "names");
			return -1;
		}
		json_array_foreach (req, i, v) {
			if (!json_is_string(v)) {
				log_seterr(err, errlen,
				    "arguments: required must be an array of "
				    "property names");
				return -1;
			}
			if (json_object_get(props, json_string_value(v)) == NULL) {
				log_seterr(err, errlen,
				    "arguments: required names '%s', which is not a "
				    "property",
				    json_string_value(v));
				return -1;
			}
			for (j = 0; j < i; j++)
				if (json_equal(v, json_array_get(req, j))) {
					log_seterr(err, errlen,
					    "arguments: required names '%s' twice",
					    json_string_value(v));
					return -1;
				}
		}
	}
	return 0;
}

/* Whether name is listed in the schema's required array. */
static int
is_required(json_t *schema, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(schema, "required"), i, v) {
		if (strcmp(json_string_value(v), name) == 0)
			return 1;
	}
	return 0;
}

json_t *
tool_check_args(const struct tool *t, json_t *args, const char **bad_arg, char *msg, size_t msglen)
{
	static _Thread_local char extra[128];
	json_t *props = json_object_get(t->schema, "properties"), *out = NULL, *prop, *v, *nv;
	const char *key;

	if (bad_arg != NULL)
		*bad_arg = NULL;
	if (args != NULL && !json_is_object(args)) {
		log_seterr(msg, msglen, "arguments must be an object");
		return NULL;
	}
	if ((out = json_object()) == NULL) {
		log_seterr(msg, msglen, "out of memory");
		return NULL;
	}
	json_object_foreach (args, key, v) {
		if (json_object_get(props, key) == NULL) {
			strlcpy(extra, key, sizeof(extra));
			log_seterr(msg, msglen, "unexpected argument '%s'", extra);
			if (bad_arg != NULL)
				*bad_arg = extra;
			goto fail;
		}
	}
	json_object_foreach (props, key, prop) {
		v = args != NULL ? json_object_get(args, key) : NULL;
		if (v == NULL) {
			if ((v = json_object_get(prop, "default")) != NULL) {
				if (json_object_set_new(out, key, json_deep_copy(v)) == -1) {
					log_seterr(msg, msglen, "out of memory");
					goto fail;
				}
			} else if (is_required(t->schema, key)) {
				log_seterr(msg, msglen, "missing required argument '%s'", key);
				if (bad_arg != NULL)
					*bad_arg = key;
				goto fail;
			}
			continue;
		}
		if ((nv = check_value(key, prop, v, msg, msglen)) == NULL) {
			if (bad_arg != NULL)
				*bad_arg = key;
			goto fail;
		}
		if (json_object_set_new(out, key, nv) == -1) {
			log_seterr(msg, msglen, "out of memory");
			goto fail;
		}
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/*
 * structuredContent.error, the same in every tool's schema: a tool error (isError true)
 * carries {reason, message, ...} and no result fields.  Its reasons grow with the
 * gateway, so the schema names them in prose rather than in an enum a client would
 * enforce.
 */
static const char error_schema[] =
    "{\"type\": \"object\", \"required\": [\"reason\", \"message\"],"
    " \"description\": \"Set instead of the result when the call failed as a tool error"
    " (isError true): something the caller can correct.\","
    " \"properties\": {"
    "\"reason\": {\"type\": \"string\", \"description\": \"Why, one of a fixed set:"
    " invalid_arguments, row_cap_exceeded, constraint_violated, program_failed,"
    " sandbox_limit, and on /mcp key_required, key_mismatch, binding_mismatch,"
    " plan_stale, plan_mismatch, plan_expired.\"},"
    "\"message\": {\"type\": \"string\"},"
    "\"argument\": {\"type\": \"string\", \"description\": \"The argument at fault.\"},"
    "\"count\": {\"type\": \"integer\", \"description\": \"row_cap_exceeded: the rows the"
    " call would change.\"},"
    "\"max_rows\": {\"type\": \"integer\", \"description\": \"row_cap_exceeded: the tool's"
    " limit.\"},"
    "\"constraint\": {\"type\": \"string\", \"description\": \"constraint_violated: its"
    " name.\"}}}";

/*
 * One branch of an output schema's anyOf: {description, required: names (stolen),
 * properties: {name: true, ...}}.  The top level's properties say what each member is; the
 * branch repeats the names only so that a strict validator (Ajv's strictRequired) sees
 * every required member defined where it is required.  Returns a new reference or NULL.
 */
static json_t *
branch(const char *description, json_t *names)
{
	json_t *props = json_object();
	size_t i;

	for (i = 0; i < json_array_size(names); i++)
		json_object_set_new(props, json_string_value(json_array_get(names, i)),
		    json_true());
	return json_pack("{s:s, s:o, s:o}", "description", description, "required", names,
	    "properties", props);
}

/* The anyOf of a result (the names in ok, stolen) and a tool error, set on schema. */
static int
set_branches(json_t *schema, const char *ok_description, json_t *ok)
{
	return json_object_set_new(schema, "anyOf",
	    json_pack("[o, o]", branch(ok_description, ok),
		branch("A tool error (isError true).", json_pack("[s]", "error"))));
}

/* The structuredContent schema of a read or write from its result columns: every result
 * has call_id, and either the rows (a write's with its changes and plan) or an error. */
static json_t *
rows_schema(const struct tool *t)
{
	json_t *cols, *schema = NULL, *props, *ok;
	size_t i;

	if ((cols = json_object()) == NULL)
		return NULL;
	for (i = 0; i < t->n_cols; i++)
		if (json_object_set_new(cols, t->col_names[i],
			pgjson_type_schema(t->col_types[i])) == -1)
			goto fail;
	schema = json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:{s:s, s:o}}, s:{s:s}, s:{s:s}, s:{s:s,"
			   " s:s}, s:{s:s, s:s}, s:o}, s:[s]}",
	    "type", "object", "properties", "call_id", "type", "string", "description",
	    "The call's id in the audit record.", "rows", "type", "array", "items", "type",
	    "object", "properties", cols, "row_count", "type", "integer", "truncated", "type",
	    "boolean", "dry_run", "type", "boolean", "description", "Whether this was a preview.",
	    "replayed", "type", "boolean", "description",
	    "Whether this is the stored answer of an earlier call with the same idempotency key.",
	    "error", json_loads(error_schema, 0, NULL), "required", "call_id");
	cols = NULL;
	if (schema == NULL)
		goto fail;
	props = json_object_get(schema, "properties");
	if (t->kind != TOOL_WRITE)
		ok = json_pack("[ssss]", "rows", "row_count", "truncated", "dry_run");
	else if (json_object_set_new(props, "changes",
		     json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s},"
			       " s:{s:s}, s:{}, s:{}, s:{}}}}",
			 "type", "array", "description",
			 "Per row changed: the action and the row before and after.", "items",
			 "type", "object", "properties", "table", "type", "string", "action",
			 "type", "string", "key", "before", "after")) == -1 ||
	    json_object_set_new(props, "plan_id",
		json_pack("{s:[ss], s:s}", "type", "string", "null", "description",
		    "A preview's plan: commit with this plan_id to do exactly "
		    "what it showed.")) == -1 ||
	    json_object_set_new(props, "note", json_pack("{s:s}", "type", "string")) == -1 ||
	    json_object_set_new(props, "status",
		json_pack("{s:s, s:s}", "type", "string", "description",
		    "approval_required: a preview held for an approver; nothing was "
		    "changed. Once an approver approves plan_id, commit with it.")) == -1 ||
	    json_object_set_new(props, "approval",
		json_pack("{s:s, s:s}", "type", "object", "description",
		    "With status approval_required: {four_eyes, expires_at}.")) == -1)
		goto fail;
	else
		ok = json_pack("[ssssss]", "rows", "row_count", "truncated", "dry_run", "changes",
		    "plan_id");
	if (set_branches(schema, "A result.", ok) == -1)
		goto fail;
	return schema;
fail:
	json_decref(cols);
	json_decref(schema);
	return NULL;
}

/* The structuredContent schema of a code tool: what code_run returns (gateway/code.c), the
 * program's outcome or, for a dry run, the plan; or a tool error, whose
 * structuredContent.error carries the same outcome fields for a program that failed. */
static const char code_output_schema[] =
    "{\"type\": \"object\", \"required\": [\"call_id\"], \"properties\": {"
    "\"call_id\": {\"type\": \"string\", \"description\": \"The call's id in the audit"
    " record.\"},"
    "\"dry_run\": {\"type\": \"boolean\"},"
    "\"exit_code\": {\"type\": [\"integer\", \"null\"],"
    " \"description\": \"The program's exit status; null when a signal ended it.\"},"
    "\"signal\": {\"type\": \"integer\", \"description\": \"The signal that ended it, or 0.\"},"
    "\"limit\": {\"type\": [\"string\", \"null\"],"
    " \"enum\": [\"wall\", \"cpu\", \"memory\", \"pids\", \"fsize\", \"output\", null],"
    " \"description\": \"The sandbox limit that stopped the program, or null.\"},"
    "\"limits_hit\": {\"type\": \"array\", \"items\": {\"type\": \"string\"},"
    " \"description\": \"Every limit reached, stopping the program or not.\"},"
    "\"stdout\": {\"description\": \"The program's stdout: the JSON value when the whole of it"
    " is JSON, else text.\"},"
    "\"stdout_truncated\": {\"type\": \"boolean\"},"
    "\"stderr\": {\"type\": \"string\"},"
    "\"stderr_truncated\": {\"type\": \"boolean\"},"
    "\"wall_ms\": {\"type\": \"integer\"},"
    "\"cpu_ms\": {\"type\": [\"integer\", \"null\"]},"
    "\"peak_memory_bytes\": {\"type\": [\"integer\", \"null\"]},"
    "\"input_tool\": {\"type\": \"object\", \"description\": \"The read tool whose rows were"
    " the input.\", \"properties\": {\"name\": {\"type\": \"string\"},"
    " \"row_count\": {\"type\": \"integer\"}, \"truncated\": {\"type\": \"boolean\"}}},"
    "\"plan\": {\"type\": \"object\", \"description\": \"Dry run only: what would run.\","
    " \"properties\": {\"interpreter\": {\"type\": \"string\"},"
    " \"limits\": {\"type\": \"object\"},"
    " \"allow\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
    " \"isolation\": {\"type\": \"string\", \"enum\": [\"namespace\", \"gvisor\"]},"
    " \"input_bytes\": {\"type\": [\"integer\", \"null\"]},"
    " \"input_tool\": {\"type\": \"string\"}}}"
    "}}";

static json_t *
code_schema(void)
{
	json_t *schema = json_loads(code_output_schema, 0, NULL);

	if (schema != NULL &&
	    (json_object_set_new(json_object_get(schema, "properties"), "error",
		 json_loads(error_schema, 0, NULL)) == -1 ||
		set_branches(schema,
		    "A run, or a dry "
		    "run's plan.",
		    json_pack("[s]", "dry_run")) == -1)) {
		json_decref(schema);
		return NULL;
	}
	return schema;
}

json_t *
tool_output_schema(const struct tool *t)
{
	return t->kind == TOOL_CODE ? code_schema() : rows_schema(t);
}

/* The schema for clients: a copy without the "sensitive" marks. */
static json_t *
client_schema(json_t *schema)
{
	json_t *copy = json_deep_copy(schema), *prop;
	const char *key;

	if (copy == NULL)
		return NULL;
	json_object_foreach (json_object_get(copy, "properties"), key, prop) {
		json_object_del(prop, "sensitive");
	}
	return copy;
}

/*
 * The inputSchema tools/list shows for a write that takes its call options as arguments:
 * input (borrowed) plus airlock_dry_run, airlock_idempotency_key and airlock_plan_id, none
 * required.  Returns a new reference, or NULL when out of memory.
 */
static json_t *
options_schema(json_t *input)
{
	json_t *s = json_deep_copy(input), *props;

	if (s == NULL)
		return NULL;
	props = json_object_get(s, "properties");
	if (props == NULL) {
		json_object_set_new(s, "properties", json_object());
		props = json_object_get(s, "properties");
	}
	if (json_object_set_new(props, TOOL_OPTION_DRY_RUN,
		json_pack("{s:s, s:s}", "type", "boolean", "description",
		    "Preview only: run the write, show per row what "
		    "it would change, change nothing. The answer's plan_id commits exactly that.")) ==
		-1 ||
	    json_object_set_new(props, TOOL_OPTION_KEY,
		json_pack("{s:s, s:i, s:i, s:s}", "type", "string", "minLength", 1, "maxLength",
		    255, "description",
		    "Required to "
		    "commit: a key of your choice for this change. Send the same key when you retry, so "
		    "it happens once; a new change needs a new key.")) == -1 ||
	    json_object_set_new(props, TOOL_OPTION_PLAN,
		json_pack("{s:s, s:s, s:s}", "type", "string", "pattern",
		    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
		    "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
		    "description",
		    "The plan_id of a preview: commit "
		    "only if the change is still exactly what the preview showed.")) == -1) {
		json_decref(s);
		return NULL;
	}
	return s;
}

int
tool_schema_load(struct tool *t, json_t *schema, char *err, size_t errlen)
{
	char fault[1024];

	if (check_schema(schema, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		return -1;
	}
	t->schema = json_incref(schema);
	if ((t->input_schema = client_schema(t->schema)) == NULL)
		return -1;
	if ((t->listed_schema = t->has_call_options ? options_schema(t->input_schema)
						    : json_incref(t->input_schema)) == NULL)
		return -1;
	return 0;
}
