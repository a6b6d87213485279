/**
 * The CLI's commands as one function over `deps`, so the same code runs in the CLI process and,
 * when the CLI hands a command over the control socket, inside the running service.
 */
import { isRole, ROLES } from '../core/api-key.ts'
import type { Deps } from '../services/deps.ts'
import { createApiKey, createTenant, revokeApiKey } from '../services/tenants.ts'

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export const USAGE = `usage:
  cli tenant create <slug> [--name <display name>]
  cli apikey create <slug> --role ADMIN|AGENT [--label <text>]
  cli apikey revoke <slug> <keyId or key>`

interface Parsed {
  readonly positional: string[]
  readonly options: Map<string, string>
}

function parse(argv: readonly string[], allowed: readonly string[]): Parsed {
  const positional: string[] = []
  const options = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined]
      if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`)
      const value = inline ?? argv[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      options.set(name, value)
    } else {
      positional.push(arg)
    }
  }
  return { positional, options }
}

/** Checks the arguments without touching the database, so mistakes fail fast. */
export function validateArgs(argv: readonly string[]): void {
  const [noun, verb, ...rest] = argv
  const key = `${noun ?? ''} ${verb ?? ''}`
  if (key === 'tenant create') {
    const { positional } = parse(rest, ['name'])
    if (positional.length !== 1) throw new UsageError('tenant create takes exactly one <slug>')
  } else if (key === 'apikey create') {
    const { positional, options } = parse(rest, ['role', 'label'])
    if (positional.length !== 1) throw new UsageError('apikey create takes exactly one <slug>')
    const role = options.get('role')
    if (role === undefined) throw new UsageError('apikey create needs --role ADMIN or --role AGENT')
    if (!isRole(role))
      throw new UsageError(`--role must be one of ${ROLES.join(', ')} (got "${role}")`)
  } else if (key === 'apikey revoke') {
    const { positional } = parse(rest, [])
    if (positional.length !== 2) throw new UsageError('apikey revoke takes <slug> and <keyId>')
  } else {
    throw new UsageError(
      argv.length === 0 ? 'no command given' : `unknown command "${argv.join(' ')}"`,
    )
  }
}

export async function runCommand(deps: Deps, argv: readonly string[]): Promise<unknown> {
  validateArgs(argv)
  const [noun, verb, ...rest] = argv
  if (noun === 'tenant' && verb === 'create') {
    const { positional, options } = parse(rest, ['name'])
    const { tenant, apiKey } = await createTenant(deps, {
      slug: positional[0] as string,
      name: options.get('name'),
    })
    return {
      tenant: { id: tenant.id, slug: tenant.slug, name: tenant.name },
      apiKey: apiKey.apiKey,
      role: apiKey.role,
      keyId: apiKey.keyId,
    }
  }
  if (noun === 'apikey' && verb === 'create') {
    const { positional, options } = parse(rest, ['role', 'label'])
    const role = options.get('role')
    if (role === undefined || !isRole(role)) throw new UsageError('--role must be ADMIN or AGENT')
    const key = await createApiKey(deps, {
      slug: positional[0] as string,
      role,
      label: options.get('label'),
    })
    return { apiKey: key.apiKey, role: key.role, keyId: key.keyId }
  }
  const { positional } = parse(rest, [])
  await revokeApiKey(deps, { slug: positional[0] as string, keyId: positional[1] as string })
  return { revoked: true, keyId: positional[1] }
}
