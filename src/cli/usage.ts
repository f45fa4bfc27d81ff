/**
 * Usage mistakes on the `memwire` command line: one error class, which main.ts turns into exit
 * status 2, and the check every subcommand without a flag table of its own runs on its argv.
 */

/** A usage mistake (unknown flag, missing or bad value): exit status 2. */
export class CommandUsageError extends Error {}

/**
 * Throw CommandUsageError unless every argument is one of `valued` followed by its value, or one
 * of `boolean`. (`--help`/`-h` are answered before this runs.)
 */
export function checkArguments(command: string, argv: readonly string[], valued: readonly string[], boolean: readonly string[] = []): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (boolean.includes(arg)) continue;
    if (valued.includes(arg)) {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new CommandUsageError(`memwire ${command}: ${arg} needs a value`);
      i++;
      continue;
    }
    throw new CommandUsageError(`memwire ${command}: ${arg.startsWith('-') ? 'unknown flag' : 'unexpected argument'} ${JSON.stringify(arg)} (memwire ${command} --help)`);
  }
}
