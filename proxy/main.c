/*
 * main.c - command line: eosproxy -c FILE | --check -c FILE | --version.
 */
#include "config.h"
#include "log.h"
#include "proxy.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: eosproxy -c FILE          run with config FILE\n"
               "       eosproxy --check -c FILE  validate FILE and exit (0 if valid)\n"
               "       eosproxy --version        print the version\n");
}

static int run(config_t *cfg)
{
    enum log_level level = LOG_INFO;
    log_level_parse(cfg->log.level, &level);
    log_setup(level, cfg->log.format == LOG_FORMAT_JSON);

    struct event_base *base = event_base_new();
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    struct proxy *px = proxy_new(cfg, base);
    int rc = 1;
    if (px && proxy_start(px) == 0) {
        event_base_dispatch(base);
        /* Teardown is short; a late SIGTERM must not turn exit 0 into a kill. */
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        rc = px->exit_code;
        log_info("stopped (exit %d)", rc);
    }
    proxy_free(px);
    event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, opt;
    if (argc > 1 && strcmp(argv[1], "passwd") == 0) {
        fprintf(stderr, "eosproxy passwd: not supported by this version of eosproxy\n");
        return 2;
    }
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'V':
            printf("eosproxy %s\n", EOSPROXY_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    config_t *cfg = config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "eosproxy: %s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", path);
        config_free(cfg);
        return 0;
    }
    int rc = run(cfg);
    config_free(cfg);
    return rc;
}
