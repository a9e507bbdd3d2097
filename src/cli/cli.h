/*
 * cli: subcommands of the wharf command line that live outside main.c. Each
 * takes the arguments after the program name (argv[0] is the subcommand) and
 * returns the process exit status.
 */
#ifndef WH_CLI_H
#define WH_CLI_H

/* `wharf scan [options] TARGET`: inventory an image and report its vulnerabilities. */
int wh_cli_scan(int argc, char **argv);
/* `wharf vulndb import|status|update ...`: manage the vulnerability database. */
int wh_cli_vulndb(int argc, char **argv);

#endif
