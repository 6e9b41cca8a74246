/* The kernel's share of `cowl run BOX -- true`, for bench/run: what any
 * sandbox built like cowl pays before its own code counts.
 *
 *   floor BASE LOWER...
 *
 * Clones the namespaces cowl makes (user, mount, pid, network, ipc, uts,
 * cgroup), maps the caller's ids, mounts one overlay per LOWER exactly as a
 * rootless cowl box does (volatile, userxattr, a fresh work directory each
 * run, uppers kept under BASE across runs), forks and execs /bin/true, and
 * lets the kernel tear it all down when the namespace's last process exits.
 * No /proc, /dev, pivot_root or policy: those are cowl's own costs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor BASE LOWER...\n");
        return 2;
    }
    const char *base = argv[1];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char run[4096];
    snprintf(run, sizeof run, "%s/run-%d-%ld%09ld", base, getpid(), (long)now.tv_sec, now.tv_nsec);
    if (mkdir(run, 0700)) { perror(run); return 1; }
    uid_t uid = getuid();
    gid_t gid = getgid();
    long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_NEWCGROUP;
    pid_t pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) { perror("clone"); return 1; }
    if (pid == 0) {
        char map[64];
        snprintf(map, sizeof map, "%u %u 1", uid, uid);
        if (put("/proc/self/setgroups", "deny") || put("/proc/self/uid_map", map)) _exit(1);
        snprintf(map, sizeof map, "%u %u 1", gid, gid);
        if (put("/proc/self/gid_map", map)) _exit(1);
        for (int i = 2; i < argc; i++) {
            char upper[4200], work[4200], point[4200], opts[16384];
            snprintf(upper, sizeof upper, "%s/u%d", base, i);
            snprintf(point, sizeof point, "%s/m%d", base, i);
            snprintf(work, sizeof work, "%s/w%d", run, i);
            mkdir(upper, 0700);
            mkdir(point, 0700);
            if (mkdir(work, 0700)) { perror(work); _exit(1); }
            snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr,volatile",
                     argv[i], upper, work);
            if (mount("overlay", point, "overlay", 0, opts)) { perror(opts); _exit(1); }
        }
        pid_t app = fork();
        if (app == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int status;
        if (app < 0 || waitpid(app, &status, 0) < 0) _exit(1);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
