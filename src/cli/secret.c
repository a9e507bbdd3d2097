/*
 * secret.c: reading a password. On a terminal it is prompted for on stderr
 * and typed without echo (the terminal's settings are restored however the
 * command ends, Ctrl-C included), twice when it is being set; from a pipe it
 * is one line of standard input, so scripts can feed it. A line longer than
 * the buffer is refused rather than cut: a cut password is not the one the
 * operator meant.
 */
#include "cli/cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth/auth.h"

static struct termios saved;   /* the terminal's settings while echo is off */
static volatile sig_atomic_t echo_off;

static void restore_and_reraise(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads one line into `out`; WH_EINVALID when nothing came or it does not fit. */
static int read_line(char *out, size_t cap)
{
    if (!fgets(out, (int)cap, stdin))
        return wh_error_set(WH_EINVALID, "no password given on standard input");
    size_t n = strlen(out);
    bool newline = n > 0 && out[n - 1] == '\n';
    if (!newline && !feof(stdin)) {
        /* drop the rest of the line so nothing of it is read as the next answer */
        int ch;
        while ((ch = getchar()) != EOF && ch != '\n')
            ;
        explicit_bzero(out, cap);
        return wh_error_set(WH_EINVALID, "the password is longer than %zu bytes", cap - 2);
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* Prompts on stderr and reads a line from the terminal without echo. */
static int read_hidden(char *out, size_t cap, const char *prompt)
{
    struct termios quiet;
    struct sigaction sa, old[4];
    static const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    int error;

    if (tcgetattr(STDIN_FILENO, &saved) != 0) {
        fprintf(stderr, "%s", prompt);
        return read_line(out, cap);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &sa, &old[i]);
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    echo_off = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    /* the prompt only once echo is off: what is typed after it is never shown */
    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    error = read_line(out, cap);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    echo_off = 0;
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    fputc('\n', stderr); /* the newline the user typed was not echoed */
    return error;
}

int wh_cli_read_password(char *out, size_t cap, const char *what, bool confirm)
{
    char again[WH_AUTH_PASSWORD_MAX + 2];
    char prompt[300];
    int error;

    if (!isatty(STDIN_FILENO)) {
        if ((error = read_line(out, cap)) == 0 && !*out)
            error = wh_error_set(WH_EINVALID, "the password is empty");
        return error;
    }
    snprintf(prompt, sizeof(prompt), "%s: ", what);
    if ((error = read_hidden(out, cap, prompt)) < 0)
        return error;
    if (!*out)
        return wh_error_set(WH_EINVALID, "the password is empty");
    if (!confirm)
        return 0;
    snprintf(prompt, sizeof(prompt), "%s, again: ", what);
    if ((error = read_hidden(again, cap < sizeof(again) ? cap : sizeof(again), prompt)) == 0 &&
        strcmp(again, out) != 0)
        error = wh_error_set(WH_EINVALID, "the two passwords differ");
    explicit_bzero(again, sizeof(again));
    if (error < 0)
        explicit_bzero(out, cap);
    return error;
}
