import { describe, expect, it } from 'vitest'
import type { StepUp } from '../../src/core/auth-session.ts'
import {
  acrSatisfied,
  STEP_UP_LIMITS,
  stepUpProblems,
  toStepUp,
  type StepUpInput,
} from '../../src/core/step-up.ts'

const NEEDS_OIDC = /needs an OpenID Connect integration/

/** The fields with a problem, in the order reported. */
const fields = (input: StepUpInput, openIdConnect: boolean): string[] =>
  stepUpProblems(input, openIdConnect).map((p) => p.field)

/** The one problem the input is expected to have. */
function onlyProblem(
  input: StepUpInput,
  openIdConnect: boolean,
): { field: string; message: string } {
  const problems = stepUpProblems(input, openIdConnect)
  expect(problems).toHaveLength(1)
  const [problem] = problems
  if (problem === undefined) throw new Error('no problem reported')
  return problem
}

describe('stepUpProblems', () => {
  it('accepts an empty input, with or without OpenID Connect', () => {
    expect(stepUpProblems({}, true)).toEqual([])
    expect(stepUpProblems({}, false)).toEqual([])
  })

  it('treats null and undefined as absent', () => {
    const absent = { prompt: null, maxAgeSeconds: null, loginHint: null, acrValues: null }
    expect(stepUpProblems(absent, false)).toEqual([])
    const undefinedFields = {
      prompt: undefined,
      maxAgeSeconds: undefined,
      loginHint: undefined,
      acrValues: undefined,
    }
    expect(stepUpProblems(undefinedFields, false)).toEqual([])
  })

  it('accepts every field at once on an OpenID Connect integration', () => {
    const input = {
      prompt: 'login consent',
      maxAgeSeconds: 300,
      loginHint: 'ada@example.com',
      acrValues: ['urn:mace:incommon:iap:silver', 'phr'],
    }
    expect(stepUpProblems(input, true)).toEqual([])
  })

  describe('prompt', () => {
    it('accepts space-separated values, without OpenID Connect too', () => {
      const max = STEP_UP_LIMITS.promptValues
      for (const prompt of [
        'login',
        'none',
        'consent',
        'select_account',
        'create',
        'login consent',
        '  login   consent  ',
        Array.from({ length: max }, (_, i) => `value-${i}`).join(' '),
        'p'.repeat(32),
      ]) {
        expect(stepUpProblems({ prompt }, false), prompt).toEqual([])
        expect(stepUpProblems({ prompt }, true), prompt).toEqual([])
      }
    })

    it('refuses an empty prompt', () => {
      for (const prompt of ['', '   ']) {
        const problem = onlyProblem({ prompt }, true)
        expect(problem.field).toBe('prompt')
        expect(problem.message).toMatch(/must not be empty/)
      }
    })

    it('refuses more values than the limit', () => {
      const prompt = Array.from(
        { length: STEP_UP_LIMITS.promptValues + 1 },
        (_, i) => `value${i}`,
      ).join(' ')
      const problem = onlyProblem({ prompt }, true)
      expect(problem.field).toBe('prompt')
      expect(problem.message).toMatch(`up to ${STEP_UP_LIMITS.promptValues} space-separated values`)
    })

    it('refuses values with characters outside letters, digits, _ and -', () => {
      for (const prompt of [
        'login,consent',
        'login;',
        'lögin',
        'login\tconsent',
        'login\nconsent',
        'log+in',
        'p'.repeat(33),
      ]) {
        const problem = onlyProblem({ prompt }, true)
        expect(problem.field, prompt).toBe('prompt')
        expect(problem.message, prompt).toMatch(/space-separated values/)
      }
    })

    it('refuses none combined with other values', () => {
      for (const prompt of ['none login', 'consent none', 'login none select_account']) {
        const problem = onlyProblem({ prompt }, false)
        expect(problem.field, prompt).toBe('prompt')
        expect(problem.message, prompt).toMatch(/none cannot be combined/)
      }
    })
  })

  describe('maxAgeSeconds', () => {
    it('accepts whole seconds from 0 to the limit on an OpenID Connect integration', () => {
      for (const maxAgeSeconds of [0, 1, 3600, STEP_UP_LIMITS.maxAgeSeconds]) {
        expect(stepUpProblems({ maxAgeSeconds }, true), String(maxAgeSeconds)).toEqual([])
      }
    })

    it('refuses a negative, fractional, too large or non-finite value', () => {
      for (const maxAgeSeconds of [
        -1,
        0.5,
        59.9,
        STEP_UP_LIMITS.maxAgeSeconds + 1,
        Number.NaN,
        Number.POSITIVE_INFINITY,
      ]) {
        const problem = onlyProblem({ maxAgeSeconds }, true)
        expect(problem.field, String(maxAgeSeconds)).toBe('maxAgeSeconds')
        expect(problem.message).toBe(
          `must be a whole number of seconds from 0 to ${STEP_UP_LIMITS.maxAgeSeconds}`,
        )
      }
    })

    it('needs an OpenID Connect integration, even for 0', () => {
      for (const maxAgeSeconds of [0, 300]) {
        const problem = onlyProblem({ maxAgeSeconds }, false)
        expect(problem.field).toBe('maxAgeSeconds')
        expect(problem.message).toMatch(NEEDS_OIDC)
      }
    })

    it('reports an invalid value once without OpenID Connect, as invalid', () => {
      const problem = onlyProblem({ maxAgeSeconds: -5 }, false)
      expect(problem.field).toBe('maxAgeSeconds')
      expect(problem.message).toMatch(/whole number of seconds/)
    })
  })

  describe('loginHint', () => {
    it('accepts a hint up to the limit, without OpenID Connect too', () => {
      const max = STEP_UP_LIMITS.loginHint
      for (const loginHint of [
        'ada@example.com',
        'ada lovelace',
        'Ada Lovelace 😀',
        'h'.repeat(max),
        `  ${'h'.repeat(max)}  `,
      ]) {
        expect(stepUpProblems({ loginHint }, false), loginHint).toEqual([])
        expect(stepUpProblems({ loginHint }, true), loginHint).toEqual([])
      }
    })

    it('refuses an empty hint', () => {
      for (const loginHint of ['', '  ', '\n\t']) {
        const problem = onlyProblem({ loginHint }, true)
        expect(problem.field).toBe('loginHint')
        expect(problem.message).toMatch(/must not be empty/)
      }
    })

    it('refuses a hint longer than the limit', () => {
      const problem = onlyProblem({ loginHint: 'h'.repeat(STEP_UP_LIMITS.loginHint + 1) }, true)
      expect(problem.field).toBe('loginHint')
      expect(problem.message).toBe(`must be at most ${STEP_UP_LIMITS.loginHint} characters`)
    })

    it('refuses control characters inside the hint', () => {
      for (const loginHint of ['ada\u0000', 'a\nb', 'a\tb', 'a\u001fb', 'a\u007fb', 'a\u0085b']) {
        const problem = onlyProblem({ loginHint }, true)
        expect(problem.field, JSON.stringify(loginHint)).toBe('loginHint')
        expect(problem.message).toMatch(/control characters/)
      }
    })

    it('refuses the invisible characters that reorder or hide text, and keeps other scripts', () => {
      // "ada@example.com" shown as if it were another address: a right-to-left override, a
      // zero-width space, an isolate, the Arabic letter mark, a byte order mark.
      for (const loginHint of [
        'ada\u202e@example.com',
        'ada\u200b@example.com',
        '\u2066ada@example.com\u2069',
        'ada\u061c@example.com',
        'ada\ufeff@example.com',
      ]) {
        const problem = onlyProblem({ loginHint }, true)
        expect(problem.field, JSON.stringify(loginHint)).toBe('loginHint')
        expect(problem.message).toBe('must not contain invisible formatting characters')
      }
      expect(stepUpProblems({ loginHint: 'زيد@example.com' }, true)).toEqual([])
    })
  })

  describe('acrValues', () => {
    it('accepts up to the limit of values of printable ASCII on an OpenID Connect integration', () => {
      const many = Array.from({ length: STEP_UP_LIMITS.acrValues }, (_, i) => `urn:acr:${i}`)
      for (const acrValues of [
        ['urn:mace:incommon:iap:silver'],
        ['0', '1'],
        many,
        ['a'.repeat(STEP_UP_LIMITS.acrValue)],
        ['!~"#$%&()'],
      ]) {
        expect(stepUpProblems({ acrValues }, true), acrValues.join(' ')).toEqual([])
      }
    })

    it('refuses an empty list, too many values and values that are not printable ASCII words', () => {
      for (const acrValues of [
        [],
        Array.from({ length: STEP_UP_LIMITS.acrValues + 1 }, (_, i) => `urn:acr:${i}`),
        ['urn:acr:a b'],
        ['ok', ' leading'],
        [''],
        ['a'.repeat(STEP_UP_LIMITS.acrValue + 1)],
        ['urn:acr:é'],
        ['urn:acr:\t'],
        ['urn:acr:\u007f'],
      ]) {
        const problem = onlyProblem({ acrValues }, true)
        expect(problem.field, JSON.stringify(acrValues)).toBe('acrValues')
        expect(problem.message).toMatch(
          `must be 1 to ${STEP_UP_LIMITS.acrValues} values of printable ASCII without spaces`,
        )
      }
    })

    it('needs an OpenID Connect integration', () => {
      const problem = onlyProblem({ acrValues: ['urn:acr:silver'] }, false)
      expect(problem.field).toBe('acrValues')
      expect(problem.message).toMatch(NEEDS_OIDC)
    })
  })

  it('reports every problem at once, in field order', () => {
    const input = {
      prompt: 'none login',
      maxAgeSeconds: -1,
      loginHint: '',
      acrValues: [],
    }
    expect(fields(input, true)).toEqual(['prompt', 'maxAgeSeconds', 'loginHint', 'acrValues'])
  })

  it('reports the OpenID Connect problems together with the others', () => {
    const input = {
      prompt: 'login',
      maxAgeSeconds: 60,
      loginHint: 'a\u0000b',
      acrValues: ['urn:acr:silver'],
    }
    const problems = stepUpProblems(input, false)
    expect(problems.map((p) => p.field)).toEqual(['maxAgeSeconds', 'loginHint', 'acrValues'])
    expect(problems[0]?.message).toMatch(NEEDS_OIDC)
    expect(problems[1]?.message).toMatch(/control characters/)
    expect(problems[2]?.message).toMatch(NEEDS_OIDC)
  })

  it('accepts prompt and loginHint without OpenID Connect while refusing the others', () => {
    const input = { prompt: 'login', loginHint: 'ada', maxAgeSeconds: 0, acrValues: ['x'] }
    expect(fields(input, false)).toEqual(['maxAgeSeconds', 'acrValues'])
    expect(fields(input, true)).toEqual([])
  })
})

describe('toStepUp', () => {
  it('collapses the spaces in prompt and trims loginHint', () => {
    expect(
      toStepUp({
        prompt: '  login    consent ',
        maxAgeSeconds: 600,
        loginHint: '  ada@example.com \n',
        acrValues: ['urn:acr:silver', 'urn:acr:gold'],
      }),
    ).toEqual({
      prompt: 'login consent',
      maxAgeSeconds: 600,
      loginHint: 'ada@example.com',
      acrValues: ['urn:acr:silver', 'urn:acr:gold'],
    })
  })

  it('keeps the spaces inside loginHint', () => {
    expect(toStepUp({ loginHint: ' Ada  Lovelace ' }).loginHint).toBe('Ada  Lovelace')
  })

  it('keeps a maxAgeSeconds of 0', () => {
    expect(toStepUp({ maxAgeSeconds: 0 }).maxAgeSeconds).toBe(0)
  })

  it('gives null for every absent field', () => {
    const none: StepUp = { prompt: null, maxAgeSeconds: null, loginHint: null, acrValues: null }
    expect(toStepUp({})).toEqual(none)
    expect(
      toStepUp({ prompt: null, maxAgeSeconds: null, loginHint: null, acrValues: null }),
    ).toEqual(none)
    expect(
      toStepUp({
        prompt: undefined,
        maxAgeSeconds: undefined,
        loginHint: undefined,
        acrValues: undefined,
      }),
    ).toEqual(none)
  })
})

describe('acrSatisfied', () => {
  const stepUp = (acrValues: readonly string[] | null): StepUp => ({
    prompt: 'login',
    maxAgeSeconds: 60,
    loginHint: 'ada',
    acrValues,
  })

  it('is satisfied by any acr, or none, when no acrValues were asked for', () => {
    expect(acrSatisfied(stepUp(null), null)).toBe(true)
    expect(acrSatisfied(stepUp(null), 'urn:acr:bronze')).toBe(true)
  })

  it('is not satisfied without an acr when acrValues were asked for', () => {
    expect(acrSatisfied(stepUp(['urn:acr:silver']), null)).toBe(false)
  })

  it('is satisfied by exactly one of the values asked for', () => {
    const asked = stepUp(['urn:acr:silver', 'urn:acr:gold'])
    expect(acrSatisfied(asked, 'urn:acr:silver')).toBe(true)
    expect(acrSatisfied(asked, 'urn:acr:gold')).toBe(true)
    expect(acrSatisfied(asked, 'urn:acr:bronze')).toBe(false)
  })

  it('does not match a prefix, an extension, a different case or surrounding spaces', () => {
    const asked = stepUp(['urn:acr:silver'])
    for (const acr of ['urn:acr', 'urn:acr:silver-plus', 'URN:ACR:SILVER', ' urn:acr:silver', '']) {
      expect(acrSatisfied(asked, acr), acr).toBe(false)
    }
  })
})
