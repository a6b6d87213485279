/** The `extensions.code` values the public contract promises. */
export type ErrorCode =
  'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'BAD_USER_INPUT' | 'RATE_LIMITED'

/**
 * An error whose message is safe to show to API clients. Anything that is not an AppError is a
 * bug: the GraphQL layer masks it as "Unexpected error." and logs the detail.
 */
export abstract class AppError extends Error {
  abstract readonly code: ErrorCode

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

export class UnauthenticatedError extends AppError {
  readonly code = 'UNAUTHENTICATED'
}

export class ForbiddenError extends AppError {
  readonly code = 'FORBIDDEN'
}

/** Also what a lookup across tenants gets, so ids of other tenants cannot be probed. */
export class NotFoundError extends AppError {
  readonly code = 'NOT_FOUND'

  static of(kind: string, id: string): NotFoundError {
    return new NotFoundError(`${kind} "${id}" not found`)
  }
}

/** One wrong input field: its path (`input.tokenUrl`) and what is wrong with it. */
export interface InputFieldProblem {
  readonly field: string
  readonly message: string
}

/**
 * The message names each wrong field and what is wrong with it, e.g. `input.tokenUrl: must be
 * https`; `fields` lists them one by one (GraphQL `extensions.fields`), so a form can show each
 * next to its field without splitting the message.
 */
export class BadUserInputError extends AppError {
  readonly code = 'BAD_USER_INPUT'
  readonly fields: readonly InputFieldProblem[]

  constructor(message: string, options?: ErrorOptions & { fields?: readonly InputFieldProblem[] }) {
    super(message, options)
    this.fields = options?.fields ?? []
  }

  /** One error for several problems: the message joins them, `fields` keeps them apart. */
  static of(problems: readonly InputFieldProblem[]): BadUserInputError {
    const text = problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message))
    return new BadUserInputError(text.join('; '), {
      fields: problems,
    })
  }
}

/** Over a rate limit: `retryAfter` whole seconds until the limit's window ends (HTTP 429). */
export class RateLimitedError extends AppError {
  readonly code = 'RATE_LIMITED'
  readonly retryAfter: number

  constructor(message: string, retryAfter: number) {
    super(message)
    this.retryAfter = retryAfter
  }
}
