/* spec/helpers/slow_fsync.c: a slow disk for the nemesis soak (spec/helpers/nemesis.lua), loaded
 * with LD_PRELOAD into a cluster member. fsync() and fdatasync() first sleep for the number of
 * milliseconds written in the file named by LUACT_TEST_FSYNC_DELAY_FILE (read at every call, so
 * the harness can slow a disk down and heal it while the member runs; no file or 0: no delay),
 * then do the real call. luact's Raft storage calls libc's fsync through the LuaJIT FFI, which
 * resolves the symbol through the process's global scope, where this library comes first. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_ms(void) {
  const char *path = getenv("LUACT_TEST_FSYNC_DELAY_FILE");
  if (path == NULL) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  return strtol(buf, NULL, 10);
}

static void pause_ms(long ms) {
  if (ms <= 0) return;
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

int fsync(int fd) {
  static int (*real)(int) = NULL;
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  pause_ms(delay_ms());
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int) = NULL;
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  pause_ms(delay_ms());
  return real(fd);
}
