package templates

import (
	"fmt"
	"time"
)

// messages is the translation table: every string a page shows, in
// English and Simplified Chinese. Keys are the English text's short name.
// It is never modified.
var messages = map[string][2]string{
	// Layout.
	"site":           {"provtrail", "provtrail 溯源"},
	"skip":           {"Skip to content", "跳到正文"},
	"lang.switch":    {"中文", "English"},
	"footer":         {"Every custody handoff is a signed entry in a public, append-only log.", "每一次交接都是公开、只增不改的日志中的一条签名记录。"},
	"mirror.note":    {"This server mirrors the log of %s (origin %s), verified up to its checkpoint of size %d.", "本服务器是 %s 的日志（origin %s）的镜像，已验证到大小为 %d 的检查点。"},
	"mirror.stopped": {"This mirror stopped following %s: its log contradicted what was verified. The pages show the last verified state.", "本镜像已停止跟随 %s：其日志与已验证的内容相矛盾。页面显示的是最后验证过的状态。"},
	"mirror.writes":  {"This mirror is read-only: hand-offs, receipts and registrations go to %s.", "本镜像只读：交接、签收和登记请前往 %s。"},
	"nav.courier":    {"Courier", "快递员/代购"},
	"nav.maker":      {"Manufacturer", "制造商"},
	"needs.js":       {"Signing needs JavaScript: this page signs every event on this phone with a key that never leaves it. Turn JavaScript on to hand off, receive or register. Reading histories works without it.", "签名需要 JavaScript：此页面用只保存在本手机上的密钥为每个事件签名。请开启 JavaScript 才能交接、接收或登记。查看历史记录无需 JavaScript。"},
	"title.history":  {"Item history", "商品履历"},
	"title.problem":  {"Code problem", "代码问题"},
	"title.error":    {"Error", "错误"},
	"title.courier":  {"Courier", "快递员/代购"},
	"title.maker":    {"Manufacturer", "制造商"},
	"title.labels":   {"Label sheet", "标签页"},
	"title.actor":    {"Actor", "参与方"},
	"title.notfound": {"Page not found", "页面不存在"},

	// Verdicts: the word first, then the sentence.
	"v.genuine":          {"Genuine", "正品"},
	"v.delivered":        {"Already delivered", "已交付"},
	"v.disputed":         {"Disputed", "有争议"},
	"v.unregistered":     {"Not registered", "未登记"},
	"v.invalid":          {"Not a valid code", "无效代码"},
	"vs.custody":         {"Genuine and in the custody of %s.", "正品，目前由 %s 保管。"},
	"vs.transit":         {"Genuine and in transit to %s.", "正品，正在运往 %s。"},
	"vs.delivered":       {"Delivered to its buyer on %s. If someone is selling you this as new, it may be a copy.", "已于 %s 交付给买家。如果有人把它当作全新商品卖给您，它可能是仿冒品。"},
	"vs.disputed":        {"A problem was reported and is not resolved yet: %s", "有人报告了问题，尚未解决：%s"},
	"vs.unregistered":    {"This code is not registered. The item may be counterfeit.", "此代码未登记。该商品可能是假冒的。"},
	"vs.invalid":         {"This is not a valid product code: %s", "这不是有效的商品代码：%s"},
	"a.buyer":            {"a buyer", "一位买家"},
	"a.buyer.claim":      {"a buyer (claim code)", "一位买家（凭领取码）"},
	"you.scanned":        {"You scanned", "您扫描的是"},
	"status":             {"Status", "状态"},
	"st.in custody":      {"in custody", "保管中"},
	"st.in transit":      {"in transit", "运输中"},
	"st.delivered":       {"delivered", "已交付"},
	"st.disputed":        {"disputed", "有争议"},
	"problem.what":       {"What this means", "这意味着什么"},
	"problem.unreg.help": {"The code is well formed, but no manufacturer registered it in the log. Do not pay for this item as genuine; ask the seller where it came from.", "代码格式正确，但没有任何制造商在日志中登记过它。请不要把它当作正品购买；请询问卖家来源。"},
	"problem.inv.help":   {"The code could not be read as a GS1 Digital Link of one item. A damaged or altered label, or a copy, can cause this.", "无法把此代码识别为单件商品的 GS1 数字链接。标签损坏、被改动或被复制都可能导致这种情况。"},
	"error.internal":     {"Something went wrong on our side. Please try again in a moment.", "服务器出了问题，请稍后再试。"},
	"error.notfound":     {"There is no page at this address.", "此地址没有页面。"},
	"home":               {"Home", "首页"},

	// History page.
	"product":           {"Product", "产品"},
	"lot":               {"Lot", "批次"},
	"gtin":              {"GTIN", "GTIN"},
	"serial":            {"Serial", "序列号"},
	"manufacturer":      {"Manufacturer", "制造商"},
	"verified":          {"Verified by the operator", "已由运营方认证"},
	"not.verified":      {"Not verified: its key was revoked", "未认证：其密钥已被吊销"},
	"timeline":          {"Custody history", "流转记录"},
	"timeline.order":    {"Oldest first: from the manufacturer to today.", "按时间顺序：从制造商到今天。"},
	"scans":             {"Times this code was opened", "此代码被打开的次数"},
	"scans.note":        {"including this time", "包括这一次"},
	"k.register":        {"Registered", "登记"},
	"k.handoff":         {"Handed off", "交出"},
	"k.receive":         {"Received", "接收"},
	"k.dispute":         {"Problem reported", "报告问题"},
	"k.ruling":          {"Ruling by the operator", "运营方裁决"},
	"k.enroll":          {"Enrolled by the operator", "由运营方登记入册"},
	"k.revoke":          {"Key revoked by the operator", "密钥被运营方吊销"},
	"to":                {"to", "交给"},
	"at":                {"in", "地点"},
	"role.manufacturer": {"manufacturer", "制造商"},
	"role.courier":      {"courier", "快递员"},
	"role.reseller":     {"reseller", "经销商"},
	"role.buyer":        {"buyer", "买家"},
	"role.operator":     {"operator", "运营方"},
	"proof":             {"Proof", "证明"},
	"leaf.index":        {"Log index", "日志序号"},
	"leaf.hash":         {"Leaf hash", "叶哈希"},
	"proof.hashes":      {"Inclusion proof hashes", "包含证明哈希"},
	"checkpoint":        {"Signed checkpoint of the log", "日志的签名检查点"},
	"pinned.keys":       {"Pinned keys", "固定公钥"},
	"origin":            {"Log origin", "日志来源"},
	"log.key":           {"Log key", "日志公钥"},
	"operator.key":      {"Operator key", "运营方公钥"},
	"verify.title":      {"Check it yourself", "自行验证"},
	"verify.help":       {"Your phone can check every signature and proof above against the pinned keys, without trusting this server.", "您的手机可以用固定公钥校验以上所有签名和证明，无需信任本服务器。"},
	"verify.button":     {"Verify on this phone", "在本机验证"},
	"download":          {"Download proof bundle", "下载证明包"},
	"verify.page.link":  {"Check it with the offline verifier, and your own keys", "用离线验证器和您自己的公钥校验"},
	"epcis":             {"EPCIS 2.0 export", "EPCIS 2.0 导出"},
	"claim.title":       {"I received this item", "我已收到此商品"},
	"claim.help":        {"Enter the claim code the seller gave you. Your receipt is signed on this phone and recorded in the log.", "输入卖家给您的领取码。您的收货确认会在本机签名并记入日志。"},
	"claim.code":        {"Claim code", "领取码"},
	"claim.submit":      {"Confirm receipt", "确认收货"},
	"dispute.title":     {"Report a problem", "报告问题"},
	"dispute.help":      {"Only someone who held this item can report a problem. Say what is wrong; do not include personal data.", "只有持有过此商品的人才能报告问题。请说明问题，不要填写个人信息。"},
	"dispute.reason":    {"What is wrong", "问题描述"},
	"dispute.submit":    {"Report", "提交报告"},
	"qr":                {"QR code of this item", "此商品的二维码"},

	// Courier page.
	"scan.title":     {"Scan an item", "扫描商品"},
	"scan.help":      {"Point the camera at the QR code on the label.", "将摄像头对准标签上的二维码。"},
	"scan.upload":    {"Or take a photo of the code", "或拍一张二维码照片"},
	"scan.manual":    {"Or type the code's address", "或输入代码地址"},
	"open":           {"Open", "打开"},
	"item":           {"Item", "商品"},
	"custodian":      {"Current custodian", "当前保管方"},
	"pending":        {"Handoff pending to", "待交接给"},
	"none":           {"none", "无"},
	"handoff.title":  {"Hand off", "交出商品"},
	"handoff.to":     {"To actor id", "交给（参与方 ID）"},
	"handoff.claim":  {"To a buyer: make a one-time claim code instead", "交给买家：改为生成一次性领取码"},
	"place":          {"Place (city)", "地点（城市）"},
	"handoff.submit": {"Sign and hand off", "签名并交出"},
	"receive.title":  {"Accept a handoff", "接收交接"},
	"receive.submit": {"Sign and accept", "签名并接收"},
	"enroll.title":   {"Enroll this phone", "登记本手机"},
	"enroll.help":    {"Create this phone's key, then give the public key below to the operator, who enrolls it with `prov enroll`. The private key never leaves this phone.", "生成本手机的密钥，然后把下面的公钥交给运营方，由其用 `prov enroll` 登记。私钥不会离开本手机。"},
	"enroll.id":      {"Your actor id", "您的参与方 ID"},
	"enroll.submit":  {"Create this phone's key", "生成本手机密钥"},
	"enroll.key":     {"Public key (verifier key)", "公钥（验证密钥）"},
	"result":         {"Result", "结果"},

	// Manufacturer page.
	"register.title":  {"Register items", "登记商品"},
	"register.help":   {"Register one item or a batch. Serials are made unguessable on this device; each item is a signed event.", "登记一件或一批商品。序列号在本设备上随机生成、无法猜测；每件商品都是一条签名事件。"},
	"register.count":  {"How many", "数量"},
	"register.desc":   {"Description (optional)", "描述（可选）"},
	"register.submit": {"Sign and register", "签名并登记"},
	"labels.title":    {"Print labels", "打印标签"},
	"labels.help":     {"Open a printable A4 sheet of QR labels for registered items.", "为已登记的商品打开可打印的 A4 二维码标签页。"},
	"labels.item":     {"Item code (Digital Link)", "商品代码（数字链接）"},
	"labels.open":     {"Open label sheet", "打开标签页"},
	"labels.none":     {"No items on this sheet. Add ?item=<Digital Link> to the address, once per item.", "此页没有商品。请在地址后加 ?item=<数字链接>，每件商品一次。"},
	"labels.print":    {"Use your browser's Print command. Print at 100% (no scaling) so every code keeps its size.", "请使用浏览器的打印功能，按 100%（不缩放）打印，以保证二维码尺寸。"},

	// Actor page.
	"actor.id":         {"Actor id", "参与方 ID"},
	"actor.name":       {"Name", "名称"},
	"actor.role":       {"Role", "角色"},
	"actor.enrolled":   {"Enrolled at log index", "登记于日志序号"},
	"actor.revoked":    {"Key revoked at log index %d. Events it signs from there on are refused.", "密钥已于日志序号 %d 吊销。此后它签署的事件一律拒绝。"},
	"actor.key":        {"Verifier key", "验证公钥"},
	"actor.events":     {"Recent events", "最近事件"},
	"actor.no.listing": {"This server does not list an actor's events yet. Each item's history page shows who handled it.", "本服务器暂不支持列出参与方的事件。每件商品的履历页会显示经手方。"},
	"actor.no.events":  {"No events yet.", "暂无事件。"},

	// Offline verifier page.
	"title.verify":      {"Verify a proof bundle", "验证证明包"},
	"vp.intro":          {"This page checks an item's proof bundle entirely in this browser, against the keys you pin below: every signature, inclusion proof and custody rule. Once loaded it needs no network, and it trusts nothing the server says.", "此页面完全在本浏览器中、用您在下方固定的公钥校验商品的证明包：每个签名、每个包含证明和每条流转规则。页面加载后无需网络，也不信任服务器所说的任何内容。"},
	"vp.needs.js":       {"Checking a bundle needs JavaScript. Without it, use the command line: prov verify --bundle FILE --policy FILE.", "校验证明包需要 JavaScript。没有 JavaScript 时，请使用命令行：prov verify --bundle FILE --policy FILE。"},
	"vp.bundle":         {"Proof bundle", "证明包"},
	"vp.file":           {"Choose a bundle file", "选择证明包文件"},
	"vp.drop":           {"Or drop the file onto this box.", "或把文件拖放到此框中。"},
	"vp.paste":          {"Or paste the bundle's text", "或粘贴证明包文本"},
	"vp.policy":         {"Witness policy (optional)", "见证方策略（可选）"},
	"vp.policy.help":    {"Paste a trust policy file (c2sp.org/tlog-policy, as \"prov keys --policy\" writes it) to require that independent witnesses cosigned the checkpoint: a bundle whose checkpoint lacks the cosignatures its quorum needs fails.", "粘贴信任策略文件（c2sp.org/tlog-policy 格式，即 \"prov keys --policy\" 输出的文件），要求检查点带有独立见证方的联署签名：检查点缺少法定数量联署签名的证据包将校验失败。"},
	"vp.keys.note":      {"These keys are prefilled from this server's /keys, so they prove nothing about this server. A careful user replaces them with the keys the operator published elsewhere (a website, a printed leaflet) before checking.", "这些公钥预填自本服务器的 /keys，因此不能证明本服务器可信。谨慎的用户会在校验前，把它们替换为运营方在别处（网站、随货印刷的说明）公布的公钥。"},
	"vp.button":         {"Verify in this browser", "在本浏览器中验证"},
	"vp.checking":       {"Checking signatures and proofs in this browser…", "正在本浏览器中校验签名和证明……"},
	"vp.ok":             {"Verified", "验证通过"},
	"vp.fail":           {"Verification failed", "验证失败"},
	"vp.load.fail":      {"Could not load the bundle", "无法加载证明包"},
	"vp.events":         {"%d events of %s", "%[2]s 的 %[1]d 个事件"},
	"vp.checkpoint":     {"Checkpoint", "检查点"},
	"vp.actors":         {"Actors", "参与方"},
	"vp.save.title":     {"Keep this verifier", "保存此验证器"},
	"vp.save.help":      {"Download this page as one HTML file: it holds the verifier code and works from disk, with no network and no server.", "把此页面下载为单个 HTML 文件：它包含验证代码，可从本地磁盘打开使用，无需网络和服务器。"},
	"vp.save":           {"Save this page (one HTML file)", "保存此页面（单个 HTML 文件）"},
	"vp.bad.bundle.url": {"?bundle= must be a path on this server (starting with /): %s", "?bundle= 必须是本服务器上的路径（以 / 开头）：%s"},

	// Label signatures (GS1 AI 8030).
	"label.title":       {"Label signature", "标签签名"},
	"label.ok":          {"Label signed by %s (checked)", "标签由 %s 签名（已校验）"},
	"label.bad":         {"Label signature does not match: this label may be a copy", "标签签名不符：此标签可能是复制的"},
	"label.help":        {"The code on this label carries the manufacturer's signature over this item's number (GS1 AI 8030), checked against the key the operator enrolled for the manufacturer.", "此标签上的代码带有制造商对该商品编号的签名（GS1 AI 8030），已用运营方为该制造商登记的公钥校验。"},
	"label.recheck.ok":  {"Re-checked in this browser: the signature matches the manufacturer's key.", "已在本浏览器中重新校验：签名与制造商公钥相符。"},
	"label.recheck.bad": {"Re-checked in this browser: the signature does not match the manufacturer's key.", "已在本浏览器中重新校验：签名与制造商公钥不符。"},
	"label.bad.form":    {"The label signature (?8030=) is malformed: %s", "标签签名（?8030=）格式错误：%s"},
}

// T returns the text of key in language l (English for an unknown
// language). An unknown key is returned as is, so a missing translation
// shows up on the page rather than as an empty string.
func T(l Lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if l == Chinese {
		return m[1]
	}
	return m[0]
}

// Tf is T with fmt.Sprintf arguments.
func Tf(l Lang, key string, args ...any) string {
	return fmt.Sprintf(T(l, key), args...)
}

// Date formats a day as a page shows it.
func Date(l Lang, t time.Time) string {
	t = t.UTC()
	if l == Chinese {
		return t.Format("2006年1月2日")
	}
	return t.Format("2 January 2006")
}

// DateTime formats an event time as a page shows it (UTC).
func DateTime(l Lang, t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
