/** What every view of the dashboard is: an element, a refresh, and how often it refreshes. */
import type { Api } from './api.ts';
import { h } from './dom.ts';

export interface MerchantInfo {
  id: string;
  timezone: string;
  currency: string;
}

export interface ViewContext {
  api: Api;
  merchant: MerchantInfo;
  /** The view's settings, from the address (`#/trends?metric=orders`). */
  params: URLSearchParams;
  /** Changes settings: updates the address (so the view can be linked to) and refreshes. */
  setParams(changes: Record<string, string>): void;
}

export interface View {
  el: HTMLElement;
  /** Loads and draws; the shell calls it again after `intervalMs`. */
  refresh(): Promise<void>;
  intervalMs: number;
  destroy(): void;
}

export interface ViewSpec {
  id: string;
  title: string;
  create(ctx: ViewContext): View;
}

/** A view's heading and the line under it. */
export function header(id: string, title: string, sub: HTMLElement | string, controls?: HTMLElement): HTMLElement {
  return h('header', { class: 'view-head' }, h('div', {}, h('h2', { id }, title), typeof sub === 'string' ? h('p', { class: 'sub' }, sub) : sub), controls);
}

/** "Not running in this deployment": a role's metrics are absent from the platform's registry. */
export function notRunning(what: string): HTMLElement {
  return h('p', { class: 'muted not-running' }, `${what} is not running in this deployment (no metrics from it in this process).`);
}
