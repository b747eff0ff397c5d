/*
 * Render the pipeline's Groovy snippets the way Nextflow would, without Nextflow, so that the
 * contract tests see the exact command lines the modules run.
 *
 * Usage: java -cp language-server-all.jar groovy.ui.GroovyMain render.groovy < request.json
 *        ... render.groovy --serve   (one request per input line, one reply per output line, so
 *                                     that a test session pays for one JVM start)
 * Request (JSON):
 *   project_dir       implicit `projectDir` of the config files
 *   manifest_version  workflow.manifest.version
 *   params_blocks     bodies of `params { ... }` blocks, applied in order (nextflow.config, a profile)
 *   ext               {process: {directive: closure or expression source}} from conf/modules.config
 *   tasks             [{key, process, ext_of, section, bindings, expressions, attempt}]: a script or stub
 *                     section evaluated with its input bindings, plus GString expressions (output
 *                     patterns) evaluated in the same scope
 *   directives        [{key, source, scope}]: a config value (e.g. a profile's clusterOptions
 *                     closure) evaluated with `scope` (task, workflow, params overrides)
 * Reply (JSON): {params, ext: {process: {directive: value}}, tasks: {key: {text, expressions}},
 *               directives: {key: value}}, or {error} when a snippet does not evaluate.
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

// A multi-file `path` input: interpolates as space-separated names, as in a Nextflow task.
class StagedFiles implements Iterable {
    List items
    StagedFiles(List items) { this.items = items }
    Iterator iterator() { items.iterator() }
    boolean asBoolean() { !items.isEmpty() }
    int size() { items.size() }
    String toString() { items.join(' ') }
}

// Nextflow's memory and duration literals (`6.GB`, `4.h`) for the resource directives, as
// nextflow.util.MemoryUnit / Duration read them: the product with an attempt, comparison, and a
// canonical text ("6 GB", "4h") that tests/slurm/run_chain.py turns into sbatch options.
class NfMemory implements Comparable<NfMemory> {
    static final List UNITS = ['B', 'KB', 'MB', 'GB', 'TB']
    long bytes
    NfMemory(long bytes) { this.bytes = bytes }
    NfMemory multiply(Number n) { new NfMemory((long) (bytes * n)) }
    NfMemory div(Number n) { new NfMemory((long) (bytes / n)) }
    NfMemory plus(NfMemory o) { new NfMemory(bytes + o.bytes) }
    int compareTo(NfMemory o) { bytes <=> o.bytes }
    long toMega() { bytes >> 20 }
    String toString() {
        int i = UNITS.size() - 1
        while( i > 0 && bytes % (1L << (10 * i)) != 0 ) i--
        "${bytes.intdiv(1L << (10 * i))} ${UNITS[i]}"
    }
}
class NfDuration implements Comparable<NfDuration> {
    static final Map UNITS = [d: 86400000L, h: 3600000L, m: 60000L, s: 1000L, ms: 1L]
    long millis
    NfDuration(long millis) { this.millis = millis }
    NfDuration multiply(Number n) { new NfDuration((long) (millis * n)) }
    NfDuration div(Number n) { new NfDuration((long) (millis / n)) }
    NfDuration plus(NfDuration o) { new NfDuration(millis + o.millis) }
    int compareTo(NfDuration o) { millis <=> o.millis }
    String toString() {
        def unit = UNITS.find { name, ms -> millis % ms == 0 }
        "${millis.intdiv(unit.value)}${unit.key}"
    }
}
NfMemory.UNITS.eachWithIndex { String unit, int i ->
    Number.metaClass."get${unit}" = { -> new NfMemory((long) (delegate * (1L << (10 * i)))) }
}
NfDuration.UNITS.each { String unit, long ms ->
    Number.metaClass."get${unit.capitalize()}" = { -> new NfDuration((long) (delegate * ms)) }
}
Number.metaClass.getMin = { -> new NfDuration((long) (delegate * 60000L)) }

def shell = new GroovyShell()

// Evaluate source as a closure body whose free names read (and assign into) `scope`.
def evaluateIn = { String body, Map scope ->
    def closure = (Closure) shell.evaluate("{ ->\n${body}\n}")
    closure.delegate = scope
    closure.resolveStrategy = Closure.DELEGATE_FIRST
    closure.call()
}

// A config value: a closure is called with `scope` as delegate, anything else is the value.
def configValue = { String source, Map scope ->
    def value = evaluateIn(source, scope)
    if( value instanceof Closure ) {
        value.delegate = scope
        value.resolveStrategy = Closure.DELEGATE_FIRST
        value = value.call()
    }
    value == null ? null : value.toString()
}

def handle = { request ->
    def params = [:]
    request.params_blocks.each { body ->
        def scope = new LinkedHashMap(params)
        scope.projectDir = request.project_dir
        scope.launchDir = request.project_dir
        scope.params = scope  // a param may name an earlier one (custom_config_base)
        evaluateIn(body, scope)
        scope.remove('projectDir')
        scope.remove('launchDir')
        scope.remove('params')
        params = scope
    }

    def ext = [:]
    request.ext.each { process, directives ->
        ext[process] = directives.collectEntries { name, source ->
            [name, configValue(source, [params: params, task: [process: process, attempt: 1]])]
        }
    }

    def tasks = [:]
    request.tasks.each { task ->
        def scope = [:]
        task.bindings.each { name, value ->
            scope[name] = (value instanceof List && name != 'meta') ? new StagedFiles(value) : value
        }
        scope.task = [process: task.process, ext: ext[task.ext_of] ?: [:], attempt: task.attempt ?: 1, cpus: 2, accelerator: null]
        scope.workflow = [manifest: [version: request.manifest_version ?: '0.0.0'], launchDir: request.project_dir]
        scope.params = params
        def text = evaluateIn(task.section, scope)
        def expressions = task.expressions.collect { expr -> evaluateIn('"' + expr + '"', scope).toString() }
        tasks[task.key] = [text: text.toString(), expressions: expressions]
    }
    def directives = [:]
    request.directives?.each { d ->
        def scope = new LinkedHashMap(d.scope ?: [:])
        scope.params = params + (d.scope?.params ?: [:])
        directives[d.key] = configValue(d.source, scope)
    }
    return [params: params, ext: ext, tasks: tasks, directives: directives]
}

def reply = { request ->
    try {
        return JsonOutput.toJson(handle(request))
    }
    catch( Exception e ) {
        return JsonOutput.toJson([error: e.toString()])
    }
}

if( args.contains('--serve') ) {
    def reader = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
    String line
    while( (line = reader.readLine()) != null ) {
        println(reply(new JsonSlurper().parseText(line)))
        System.out.flush()
    }
}
else {
    println(reply(new JsonSlurper().parse(System.in)))
}
