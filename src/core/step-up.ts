/**
 * What an agent may ask of the provider for one sign-in (OpenID Connect Core §3.1.2.1): `prompt`,
 * `max_age`, `login_hint` and `acr_values`. `prompt` and `loginHint` are passed on to any
 * provider; `maxAgeSeconds` and `acrValues` are checked against the ID token afterwards, so they
 * need an OpenID Connect integration (openid in scope and an issuer).
 */
import type { StepUp } from './auth-session.ts'
import type { FieldProblem } from './integration-rules.ts'
import { CONTROL, INVISIBLE } from './text-rules.ts'

export const STEP_UP_LIMITS = {
  promptValues: 5,
  maxAgeSeconds: 31_536_000,
  loginHint: 256,
  acrValues: 10,
  acrValue: 255,
} as const

export interface StepUpInput {
  readonly prompt?: string | null | undefined
  readonly maxAgeSeconds?: number | null | undefined
  readonly loginHint?: string | null | undefined
  readonly acrValues?: readonly string[] | null | undefined
}

const PROMPT_VALUE = /^[A-Za-z0-9_-]{1,32}$/
const ACR_VALUE = /^[\x21-\x7e]+$/

/** Every problem at once; `openIdConnect`: whether the integration can check an ID token. */
export function stepUpProblems(input: StepUpInput, openIdConnect: boolean): FieldProblem[] {
  const problems: FieldProblem[] = []
  const problem = (field: string, message: string) => problems.push({ field, message })
  if (input.prompt != null) {
    const values = input.prompt.trim().split(/ +/)
    if (input.prompt.trim() === '') problem('prompt', 'must not be empty (leave it out instead)')
    else if (
      values.length > STEP_UP_LIMITS.promptValues ||
      !values.every((v) => PROMPT_VALUE.test(v))
    ) {
      problem(
        'prompt',
        `must be up to ${STEP_UP_LIMITS.promptValues} space-separated values such as login, consent, select_account or none`,
      )
    } else if (values.includes('none') && values.length > 1) {
      problem('prompt', 'none cannot be combined with other values (OpenID Connect Core §3.1.2.1)')
    }
  }
  if (input.maxAgeSeconds != null) {
    const age = input.maxAgeSeconds
    if (!Number.isInteger(age) || age < 0 || age > STEP_UP_LIMITS.maxAgeSeconds) {
      problem(
        'maxAgeSeconds',
        `must be a whole number of seconds from 0 to ${STEP_UP_LIMITS.maxAgeSeconds}`,
      )
    } else if (!openIdConnect) {
      problem(
        'maxAgeSeconds',
        "needs an OpenID Connect integration (openid in scope and an issuer): only an ID token's auth_time can show how long ago the end user signed in",
      )
    }
  }
  if (input.loginHint != null) {
    const hint = input.loginHint.trim()
    if (hint === '') problem('loginHint', 'must not be empty (leave it out instead)')
    else if (hint.length > STEP_UP_LIMITS.loginHint) {
      problem('loginHint', `must be at most ${STEP_UP_LIMITS.loginHint} characters`)
    } else if (CONTROL.test(hint)) problem('loginHint', 'must not contain control characters')
    else if (INVISIBLE.test(hint)) {
      // The provider may show the hint on its login page, where these could disguise it.
      problem('loginHint', 'must not contain invisible formatting characters')
    }
  }
  if (input.acrValues != null) {
    const values = input.acrValues
    if (
      values.length === 0 ||
      values.length > STEP_UP_LIMITS.acrValues ||
      !values.every((v) => v.length <= STEP_UP_LIMITS.acrValue && ACR_VALUE.test(v))
    ) {
      problem(
        'acrValues',
        `must be 1 to ${STEP_UP_LIMITS.acrValues} values of printable ASCII without spaces, at most ${STEP_UP_LIMITS.acrValue} characters each`,
      )
    } else if (!openIdConnect) {
      problem(
        'acrValues',
        "needs an OpenID Connect integration (openid in scope and an issuer): only an ID token's acr can show how the end user signed in",
      )
    }
  }
  return problems
}

/** The step-up of a valid input, normalised. */
export function toStepUp(input: StepUpInput): StepUp {
  return {
    prompt: input.prompt?.trim().replace(/ +/g, ' ') ?? null,
    maxAgeSeconds: input.maxAgeSeconds ?? null,
    loginHint: input.loginHint?.trim() ?? null,
    acrValues: input.acrValues ?? null,
  }
}

/**
 * Whether the ID token's `acr` satisfies the requested `acr_values` (one of them, exactly).
 * `max_age` is checked with the ID token itself (the provider gateway's `auth_time` check).
 */
export function acrSatisfied(stepUp: StepUp, acr: string | null): boolean {
  return stepUp.acrValues === null || (acr !== null && stepUp.acrValues.includes(acr))
}
