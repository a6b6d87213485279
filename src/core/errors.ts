/** The `extensions.code` values the public contract promises. */
export type ErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'BAD_USER_INPUT'

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

/** The message names the field and what is wrong with it, e.g. `input.tokenUrl: must be https`. */
export class BadUserInputError extends AppError {
  readonly code = 'BAD_USER_INPUT'
}
