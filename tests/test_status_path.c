// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for the status file's name (user/status.c): one name per pin
 * directory however it is spelt (trailing or repeated slashes), because
 * ferryd and ferryctl each derive it from their own --pin-path. Unprivileged.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "status.h"
#include "testing.h"

#define SUITE "status_path"

static bool name_is(const char *pin_path, const char *want)
{
	char path[PATH_MAX];

	if (!ASSERT_OK(ferry_status__path(pin_path, path, sizeof(path)), pin_path))
		return false;
	return ASSERT_STREQ(path, want, pin_path);
}

static void test_spellings_agree(void)
{
	name_is("/sys/fs/bpf/ferry-x", "/run/ferry/_sys_fs_bpf_ferry-x.json");
	name_is("/sys/fs/bpf/ferry-x/", "/run/ferry/_sys_fs_bpf_ferry-x.json");
	name_is("/sys/fs/bpf/ferry-x///", "/run/ferry/_sys_fs_bpf_ferry-x.json");
	name_is("/sys/fs/bpf//ferry-x", "/run/ferry/_sys_fs_bpf_ferry-x.json");
	name_is("//sys/fs//bpf///ferry-x//", "/run/ferry/_sys_fs_bpf_ferry-x.json");
	name_is("/sys/fs/bpf/ferry", "/run/ferry/_sys_fs_bpf_ferry.json");
	/* The root alone keeps its one slash rather than naming "/run/ferry/.json". */
	name_is("/", "/run/ferry/_.json");
	name_is("///", "/run/ferry/_.json");
}

static void test_too_long(void)
{
	char path[32];

	ASSERT_EQ(ferry_status__path("/sys/fs/bpf/a-very-long-pin-directory", path, sizeof(path)),
		  -ENAMETOOLONG, "name longer than the buffer");
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_spellings_agree);
	RUN_TEST(SUITE, test_too_long);
	return test__summary();
}
