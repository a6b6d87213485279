/**
 * The database as Kysely sees it, written by hand to match migrations/ (kysely-codegen needs a
 * live server; test/db/schema.test.ts compares this file with the migrated database instead).
 * Nullable columns are `T | null`, never optional; database defaults are `Generated<T>`.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'
import type { ApiKeyRole as Role } from '../core/api-key.ts'
import type { AuthSessionStatus as SessionStatus, ContactUpdate } from '../core/auth-session.ts'
import type { TokenEndpointAuthMethod } from '../core/integration.ts'
import type { RedirectRouteName as RedirectRoute } from '../core/redirect-urls.ts'
import type { WebhookDeliveryStatus, WebhookEventType } from '../core/webhook.ts'

// Text columns with a fixed set of values take their type from core/, where each set is listed
// once; the migrations' CHECK constraints list the same values (test/db/schema.test.ts compares).
export type { Role }

type Json<T> = ColumnType<T, string, string>

export interface TenantsTable {
  id: Generated<string>
  slug: string
  name: string
  created_at: Generated<Date>
}

export interface ApiKeysTable {
  id: Generated<string>
  tenant_id: string
  key_id: string
  secret_hash: Uint8Array
  role: Role
  label: string | null
  created_at: Generated<Date>
  revoked_at: Date | null
}

export interface OAuthIntegrationsTable {
  id: Generated<string>
  tenant_id: string
  name: string
  client_id: string
  client_secret_sealed: string | null
  scope: string | null
  authorization_url: string
  /** Written by versions before the per-integration callback URLs; no longer read or written. */
  authorization_host: string | null
  token_url: string
  whoami_url: string | null
  whoami_mapping: string | null
  token_endpoint_auth_method: Generated<TokenEndpointAuthMethod>
  pkce: Generated<boolean>
  issuer: string | null
  split_full_name: Generated<boolean>
  overwrite_contact: Generated<boolean>
  session_ttl_seconds: Generated<number>
  message_text: string | null
  message_button_label: string | null
  created_at: Generated<Date>
  updated_at: Generated<Date>
  /** Set when the integration was deleted; the row stays for the sessions that used it. */
  deleted_at: Date | null
  /** The last segment of this integration's callback URLs. */
  callback_key: string
  shared_redirect_urls: Generated<boolean>
  require_confirmation_code: Generated<boolean>
  trust_unverified_email: Generated<boolean>
  verification_ttl_seconds: number | null
  /** The issuer's metadata as read when the integration was saved (ProviderMetadata). */
  provider_metadata: Json<unknown> | null
  metadata_fetched_at: Date | null
}

export interface AuthSessionsTable {
  id: Generated<string>
  tenant_id: string
  integration_id: string
  conversation_id: string
  contact_id: string
  redirect_route: RedirectRoute
  status: SessionStatus
  link_hash: Uint8Array
  binding_hash: Uint8Array | null
  state_hash: Uint8Array | null
  code_verifier_sealed: string | null
  identity: Json<unknown> | null
  failure: Json<unknown> | null
  expires_at: ColumnType<Date, Date | string, Date | string>
  opened_at: Date | null
  exchange_claimed_at: Date | null
  completed_at: Date | null
  created_at: Generated<Date>
  updated_at: Generated<Date>
  /** The redirect_uri of the authorization request; null for sessions of earlier versions. */
  redirect_uri: string | null
  /** Whether the authorization request was OpenID Connect (a nonce sent, an ID token due). */
  openid: Generated<boolean>
  /** The callback's RFC 9207 `iss`, as it came. */
  callback_issuer: string | null
  prompt: string | null
  max_age_seconds: number | null
  login_hint: string | null
  acr_values: Json<string[]> | null
  confirmation_code_sealed: string | null
  confirmation_code_hash: Uint8Array | null
  confirmation_shown_at: Date | null
  confirmation_attempts_left: number | null
  contact_update: ContactUpdate | null
}

export interface ContactsTable {
  tenant_id: string
  contact_id: string
  email: string | null
  user_name: string | null
  full_name: string | null
  first_name: string | null
  last_name: string | null
  verified_session_id: string | null
  verified_integration_id: string | null
  verified_at: Date | null
  verified_subject: string | null
  verified_issuer: string | null
  verified_until: Date | null
  created_at: Generated<Date>
  updated_at: Generated<Date>
}

export interface AuditEventsTable {
  id: Generated<string>
  tenant_id: string
  actor_key_id: string | null
  action: string
  target_type: string
  target_id: string
  details: ColumnType<Record<string, unknown>, string | undefined, string>
  created_at: Generated<Date>
}

/** Requests per bucket and window, added up from every instance (services/rate-limits.ts). */
export interface RateLimitCountersTable {
  bucket: string
  /** The window's start, in milliseconds since the epoch (pg returns bigint as a string). */
  window_start: ColumnType<string, number, number>
  hits: number
}

export interface RateLimitInstancesTable {
  id: string
  seen_at: Date
}

/** A tenant's webhook receiver (migrations/2026_12_02_0014_webhooks.ts). */
export interface WebhookEndpointsTable {
  id: Generated<string>
  tenant_id: string
  url: string
  /** The event types it wants (core/webhook.ts WEBHOOK_EVENT_TYPES). */
  events: Json<WebhookEventType[]>
  description: string | null
  enabled: Generated<boolean>
  secret_sealed: string
  /** The secret before the last rotation, still signing until previous_secret_until. */
  previous_secret_sealed: string | null
  previous_secret_until: Date | null
  /** The first failed attempt since the last success. */
  failing_since: Date | null
  created_at: Generated<Date>
  updated_at: Generated<Date>
}

/** Written by the auth_sessions trigger only: one reported session change. */
export interface WebhookEventsTable {
  id: Generated<string>
  tenant_id: string
  session_id: string
  type: WebhookEventType
  /** The auth_sessions row as the change left it, without its hashes and sealed values. */
  session: Json<Record<string, unknown>>
  created_at: Date
}

export interface WebhookDeliveriesTable {
  id: Generated<string>
  tenant_id: string
  event_id: string
  endpoint_id: string
  status: Generated<WebhookDeliveryStatus>
  attempts: Generated<number>
  /** Due time while PENDING (the claim's end while an attempt is in flight); null otherwise. */
  next_attempt_at: Date | null
  claim_id: string | null
  last_status_code: number | null
  last_error: string | null
  last_attempt_at: Date | null
  delivered_at: Date | null
  created_at: Date
}

export interface WebhookAttemptsTable {
  id: Generated<string>
  delivery_id: string
  attempt: number
  started_at: Date
  duration_ms: number
  status_code: number | null
  error: string | null
}

export interface Database {
  tenants: TenantsTable
  api_keys: ApiKeysTable
  oauth_integrations: OAuthIntegrationsTable
  auth_sessions: AuthSessionsTable
  contacts: ContactsTable
  audit_events: AuditEventsTable
  rate_limit_counters: RateLimitCountersTable
  rate_limit_instances: RateLimitInstancesTable
  webhook_endpoints: WebhookEndpointsTable
  webhook_events: WebhookEventsTable
  webhook_deliveries: WebhookDeliveriesTable
  webhook_attempts: WebhookAttemptsTable
}

export type TenantRow = Selectable<TenantsTable>
export type ApiKeyRow = Selectable<ApiKeysTable>
export type IntegrationRow = Selectable<OAuthIntegrationsTable>
export type NewIntegrationRow = Insertable<OAuthIntegrationsTable>
export type IntegrationUpdate = Updateable<OAuthIntegrationsTable>
export type AuthSessionRow = Selectable<AuthSessionsTable>
export type ContactRow = Selectable<ContactsTable>
export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>
export type WebhookEventRow = Selectable<WebhookEventsTable>
