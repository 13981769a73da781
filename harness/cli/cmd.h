/*
 * cmd.h - the subcommands of attnbench.
 *
 * How to add a command: write harness/cli/cmd-<name>.c with
 *   int cmd_<name>(int argc, char **argv);
 * and a usage string, declare both here, add a line to commands[] in
 * harness/cli/attnbench.c and the file to harness/cli/meson.build. A command parses its
 * options with getopt_long (argv[0] is the command's name; what every command parses
 * alike - bad options, run ids, numbers, the latest run - is in options.h), calls library
 * code from the rooms of harness/ for the work, prints results to stdout and errors with
 * error(), and returns the exit status (0, 1 or 2; see error.h).
 */
#ifndef ATTNBENCH_CMD_H
#define ATTNBENCH_CMD_H

/* Where results go unless --db says otherwise. */
#define DEFAULT_DB "results/attnbench.db"

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_slurm(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_help(int argc, char **argv);

extern const char usage_run[];
extern const char usage_check[];
extern const char usage_list[];
extern const char usage_query[];
extern const char usage_eval[];
extern const char usage_plot[];
extern const char usage_export[];
extern const char usage_import[];
extern const char usage_merge[];
extern const char usage_report[];
extern const char usage_slurm[];
extern const char usage_compare[];
extern const char usage_help[];

/* Prints the usage of a command (or the overview for NULL) to stdout; 0 or 2. */
int help_show(const char *command);

#endif
