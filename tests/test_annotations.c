// SPDX-License-Identifier: GPL-2.0-only
/*
 * docs/configuration.md's annotation table against the code's annotation
 * table (user/source/config_annotations.c): every annotation ferry reads is
 * documented, with the Values and Effect the code says, and the docs list no
 * annotation the code does not read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/annotations.h"
#include "testing.h"

#define SUITE "annotations"

#define MAX_ROWS 32

struct doc_row {
	char name[128], values[512], effect[512];
};

/* Copies a "| a | b | c |" cell (trimmed) into out; returns the rest after its '|'. */
static const char *cell(const char *p, char *out, size_t len)
{
	const char *end = strchr(p, '|');
	size_t n;

	if (!end)
		return NULL;
	while (*p == ' ')
		p++;
	n = end - p;
	while (n && p[n - 1] == ' ')
		n--;
	snprintf(out, len, "%.*s", (int)n, p);
	return end + 1;
}

/* Rows of the table whose header is "| Annotation | Values | Effect |". */
static int read_doc_table(struct doc_row *rows, int max)
{
	const char *top = getenv("FERRY_TOP");
	char path[4096], line[2048];
	bool in_table = false;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/configuration.md", top ? top : ".");
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strcmp(line, "| Annotation | Values | Effect |")) {
			in_table = true;
			continue;
		}
		if (!in_table || !strncmp(line, "|---", 4))
			continue;
		if (line[0] != '|')
			break;
		if (n == max)
			break;
		const char *p = line + 1;
		char name[128];

		p = cell(p, name, sizeof(name));
		p = p ? cell(p, rows[n].values, sizeof(rows[n].values)) : NULL;
		p = p ? cell(p, rows[n].effect, sizeof(rows[n].effect)) : NULL;
		if (!p || strlen(name) < 2 || name[0] != '`')
			continue;
		snprintf(rows[n].name, sizeof(rows[n].name), "%.*s", (int)strlen(name) - 2,
			 name + 1);
		n++;
	}
	fclose(f);
	return n;
}

static void test_docs_match_code(void)
{
	struct doc_row rows[MAX_ROWS];
	int n = read_doc_table(rows, MAX_ROWS);

	if (!ASSERT_GE(n, 1, "annotation rows in docs/configuration.md"))
		return;
	for (size_t i = 0; i < ferry_nannotations; i++) {
		const struct ferry_annotation *a = &ferry_annotations[i];
		int found = -1;

		for (int r = 0; r < n; r++)
			if (!strcmp(rows[r].name, a->name))
				found = r;
		if (!ASSERT_TRUE(found >= 0, a->name))
			continue;
		ASSERT_STREQ(rows[found].values, a->values, a->name);
		ASSERT_STREQ(rows[found].effect, a->effect, a->name);
	}
	for (int r = 0; r < n; r++) {
		bool known = false;

		for (size_t i = 0; i < ferry_nannotations; i++)
			known |= !strcmp(rows[r].name, ferry_annotations[i].name);
		ASSERT_TRUE(known, rows[r].name);
	}
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_docs_match_code);
	return test__summary();
}
