/**
 * Yoga plugins carry a name, so that runtime/app.ts can check each against the list of plugins
 * the direct GraphQL path honours or does not need (DIRECT_PATH_COMPATIBLE there).
 */
import type { Plugin } from 'graphql-yoga'

export const PLUGIN_NAME = Symbol('end-user-oauth yoga plugin name')

export type NamedPlugin = Plugin<Record<string, unknown>> & { readonly [PLUGIN_NAME]: string }

export function named(name: string, plugin: Plugin<Record<string, unknown>>): NamedPlugin {
  return Object.assign(plugin, { [PLUGIN_NAME]: name })
}
