/**
 * The bot-validation beacon: the JavaScript a storefront page loads with
 * `<script async src="https://collector.example/v1/beacon.js?writeKey=…"></script>`.
 *
 * What it does, in a browser (ES2017, no dependencies, every step in try/catch so that it can never
 * throw into the page):
 * 1. Finds its own <script> element (`document.currentScript`, captured synchronously) and takes the
 *    write key from its src and the collector base URL from its src (origin plus any path prefix
 *    before `/v1/beacon.js`), so it talks to the collector it was served from.
 * 2. Finds the visitor's anonymous id, first match wins: the script tag's `data-anonymous-id`,
 *    `window.shopstreamAnonymousId`, Segment analytics.js `analytics.user().anonymousId()`,
 *    `localStorage.ajs_anonymous_id`, cookie `ajs_anonymous_id`. analytics.js keeps the id
 *    JSON-quoted in localStorage (`"…"`); the classic analytics.js cookie is JSON-quoted and
 *    URL-encoded (`%22…%22`), analytics-next writes it raw: all three forms are read. When no id is
 *    there yet (analytics.js not initialised), it looks again every second, up to 10 times.
 * 3. Skips the rest when sessionStorage says this visitor validated with a token that has not
 *    expired yet (`shopstream_bv:<anonymousId>` = the token's expiresAt): once per visitor per token
 *    lifetime.
 * 4. GET `<base>/v1/beacon/challenge?writeKey=…&anonymousId=…`, then POST `<base>/v1/beacon/validate`
 *    with the JSON `{ writeKey, anonymousId, token }` as a text/plain body, so neither request needs
 *    a CORS preflight. No credentials are sent. On 503 it waits for Retry-After (capped at 5 s) and
 *    posts the same token again, up to 3 tries.
 *
 * The source is kept hand-minified: it is served as is and must stay under 2 KB.
 */
export const beaconScript = `(function(){try{
var w=window,d=document,s=d.currentScript||d.querySelector('script[src*="/v1/beacon.js"]');
if(!s||w.__shopstreamBeacon||typeof fetch!='function')return;w.__shopstreamBeacon=1;
var u=new URL(s.src,location.href),k=u.searchParams.get('writeKey'),b=u.origin+u.pathname.replace(/\\/v1\\/beacon\\.js$/,'')+'/v1/beacon/';
if(!k)return;
var q=function(v){try{var j=JSON.parse(v);if(typeof j=='string')v=j}catch(e){}return typeof v=='string'&&v.length>0&&v.length<=200?v:null};
var id=function(){var v=s.getAttribute('data-anonymous-id')||w.shopstreamAnonymousId;
if(!v)try{v=w.analytics.user().anonymousId()}catch(e){}
if(!v)try{v=localStorage.getItem('ajs_anonymous_id')}catch(e){}
if(!v)try{v=d.cookie.match(/(?:^|;\\s*)ajs_anonymous_id=([^;]*)/);v=v&&decodeURIComponent(v[1])}catch(e){}
return v?q(v):null};
var sleep=function(ms){return new Promise(function(r){setTimeout(r,ms)})};
var run=async function(n){try{
var a=id();
if(!a){if(n<10)setTimeout(function(){run(n+1)},1000);return}
var m='shopstream_bv:'+a;
try{if(+sessionStorage.getItem(m)>Date.now())return}catch(e){}
var r=await fetch(b+'challenge?writeKey='+encodeURIComponent(k)+'&anonymousId='+encodeURIComponent(a),{credentials:'omit',cache:'no-store'});
if(!r.ok)return;
var c=await r.json();
for(var i=0;i<3;i++){
r=await fetch(b+'validate',{method:'POST',credentials:'omit',keepalive:true,body:JSON.stringify({writeKey:k,anonymousId:a,token:c.token})});
if(r.status!=503)break;
await sleep(1000*Math.min(+r.headers.get('Retry-After')||1,5))}
if(r.ok)try{sessionStorage.setItem(m,String(c.expiresAt))}catch(e){}
}catch(e){}};
run(0)}catch(e){}})();
`;
